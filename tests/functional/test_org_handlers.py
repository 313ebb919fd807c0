"""Organization scale, the deployed stack's side (interface.md "Organization scale"): the
functions read each audited account through its member role, import its findings into its
own Security Hub and keep history and finding state in the central table, keyed per
account and region. moto gives every account reached through sts:AssumeRole its own state,
so two member accounts here are two real, separate estates (no mocks); a refused role is
STS answering AccessDenied (a hook on the function's own session, where AssumeRole is made).
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import dataclass

import boto3
import pytest
from botocore.exceptions import ClientError
from fargate_audit.app import lambda_handlers, service
from fargate_audit.core.errors import ConfigError, CredentialsError
from fargate_audit.local import estate
from support.env import ACCOUNT, REGION, TABLE, WORLD4
from support.spies import control_message, sqs_record
from support.wire import ExpiredTokens
from support.world import (
    EVENTS,
    SAMPLE_ENI,
    SAMPLE_IP,
    SAMPLE_SUBNET,
    SAMPLE_TASK,
    SAMPLE_TASK_DEFINITION,
    Task,
    emulated_world,
    list_tasks_as_aws,
    task_of,
    web_and_etl,
)

A, B = "111111111111", "222222222222"
FUNCTION = "fargate-audit-SweepWorker"
EXTERNAL_ID = "org-audit-7f3c"
SAME_TASK_ID = "0123456789abcdef0123456789abcdef"


@dataclass
class Member:
    account: str
    session: object
    clusters: dict[str, str]
    web: list[Task]

    def client(self, service: str):
        return self.session.client(service, region_name=REGION)

    def findings(self) -> dict[str, dict]:
        found = {}
        for page in self.client("securityhub").get_paginator("get_findings").paginate():
            found.update({f["Id"]: f for f in page["Findings"]})
        return found


def member(world, account: str, region: str = REGION) -> Member:
    """An estate of the same names as the central one (VPC, cluster ``prod-web``, service
    ``web``) in ``account`` and ``region``, built through moto's cross-account AssumeRole."""
    credentials = world.client("sts").assume_role(
        RoleArn=f"arn:aws:iam::{account}:role/setup", RoleSessionName="setup"
    )["Credentials"]
    session = boto3.session.Session(
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
        region_name=region,
    )
    session.client("securityhub", region_name=region).enable_security_hub()
    b = estate._Builder(session, region)
    vpc = b.vpc("prod", "10.20.0.0/16")
    igw = b.internet_gateway(vpc, "prod-igw")
    subnet = b.subnet("prod-web-public-a", vpc, "10.20.1.0/24", "a")
    b.route_table("prod-web-public", vpc, [subnet], [{"DestinationCidrBlock": WORLD4, "GatewayId": igw}])
    _sg, web, _etl = web_and_etl(b, subnet, subnet)
    return Member(account, session, dict(b.info.clusters), [task_of(b.ecs, arn) for arn in web])


def org_env(accounts: str = f"{A},{B}", **more: str) -> dict:
    return {
        "AUDITED_ACCOUNTS": accounts,
        "MEMBER_ROLE_NAME": "fargate-audit-member",
        "MEMBER_EXTERNAL_ID": EXTERNAL_ID,
        "AWS_LAMBDA_FUNCTION_NAME": FUNCTION,
    } | more


class Sts:
    """STS as the member roles' trust policies answer: AccessDenied for the accounts in
    ``denied`` and for a wrong ExternalId; every AssumeRole asked is kept."""

    def __init__(
        self,
        world,
        denied: set[str] | None = None,
        external_id: str = EXTERNAL_ID,
        code: str = "AccessDenied",
    ) -> None:
        self.denied = set(denied or ())
        self.external_id = external_id
        self.code = code  # what a denied account's AssumeRole answers (Throttling: a transient refusal)
        self.asked: list[dict] = []
        world.rt.clients.session.events.register("before-parameter-build.sts.AssumeRole", self.hook)

    def hook(self, params=None, **_):
        self.asked.append(dict(params))
        account = params["RoleArn"].split(":")[4]
        if account in self.denied or params.get("ExternalId") != self.external_id:
            raise ClientError(
                {
                    "Error": {
                        "Code": self.code,
                        "Message": f"not authorized to assume {params['RoleArn']}",
                    }
                },
                "AssumeRole",
            )

    def count(self, account: str) -> int:
        return sum(1 for p in self.asked if p["RoleArn"].split(":")[4] == account)


def scheduled() -> dict:
    return json.loads((EVENTS / "scheduled-event.json").read_text(encoding="utf-8"))


def drain(world) -> list[dict]:
    """Every sweep message the planner queued, as SQS records of the worker's batch."""
    sqs, records = world.client("sqs"), []
    while True:
        got = sqs.receive_message(QueueUrl=world.queue_url, MaxNumberOfMessages=10).get("Messages") or []
        if not got:
            return records
        for message in got:
            records.append(sqs_record(message["MessageId"], message["Body"]))
            sqs.delete_message(QueueUrl=world.queue_url, ReceiptHandle=message["ReceiptHandle"])


def running_event(m: Member, task: Task, task_id: str | None = None, event_id: str = "") -> dict:
    """The sample RUNNING event of ``task`` in ``m``'s account (``task_id``: its id instead)."""
    text = (EVENTS / "ecs-task-running.json").read_text(encoding="utf-8")
    arn = task.arn if task_id is None else f"{task.arn.rsplit('/', 1)[0]}/{task_id}"
    for old, new in {
        SAMPLE_TASK: arn,
        SAMPLE_TASK_DEFINITION: task.task_definition_arn,
        SAMPLE_ENI: task.eni,
        SAMPLE_SUBNET: task.subnet,
        SAMPLE_IP: task.private_ip,
        ACCOUNT: m.account,
    }.items():
        text = text.replace(old, new)
    event = json.loads(text)
    event["id"] = event_id or f"running-{m.account}-{arn.rsplit('/', 1)[-1]}"
    return event


def table_keys(world) -> set[str]:
    items = world.client("dynamodb").scan(TableName=TABLE)["Items"]
    return {item["pk"]["S"] for item in items}


@pytest.fixture
def org(monkeypatch):
    with emulated_world(monkeypatch, org_env()) as world:
        yield world, member(world, A), member(world, B)


def test_two_accounts_of_the_same_names_are_swept_through_their_roles_and_kept_apart(org):
    world, a, b = org
    sts = Sts(world)
    planned = world.sweep_planner(scheduled())
    assert planned["scopes"] == 2 and planned["unreachable"] == []
    records = drain(world)
    bodies = [json.loads(r["body"]) for r in records]
    # the central account (not audited) is not swept; each member's two clusters, each once
    assert sorted((m["account_id"], m["region"], m["cluster_arn"]) for m in bodies) == sorted(
        (m.account, REGION, arn) for m in (a, b) for arn in m.clusters.values()
    )
    answer = world.sweep_worker({"Records": records})
    assert answer == {"batchItemFailures": []}
    # one AssumeRole per account for the whole batch, with the ExternalId and the function's name
    assert sts.count(A) == 1 and sts.count(B) == 1 and len(sts.asked) == 2
    assert {p["RoleArn"] for p in sts.asked} == {
        f"arn:aws:iam::{A}:role/fargate-audit-member",
        f"arn:aws:iam::{B}:role/fargate-audit-member",
    }
    assert all(p["ExternalId"] == EXTERNAL_ID and p["RoleSessionName"] == FUNCTION for p in sts.asked)
    # each account's findings are in its own Security Hub, for its own account
    for m in (a, b):
        found = m.findings()
        assert found and all(f["AwsAccountId"] == m.account for f in found.values())
        assert all(
            f["ProductArn"].endswith(f":{m.account}:product/{m.account}/default") for f in found.values()
        )
        assert all(
            i.startswith(f"fargate-audit/{m.account}/{REGION}/prod-web/service:web/") or "/batch/" in i
            for i in found
        )
        assert f"fargate-audit/{m.account}/{REGION}/prod-web/service:web/NET-01" in found
    assert world.findings() == {}  # nothing lands in the central account's Security Hub
    # the central table holds both, keyed per account and region
    keys = table_keys(world)
    for m in (a, b):
        assert f"WL#{m.account}#{REGION}#prod-web#service:web" in keys
    assert not any(f"#{ACCOUNT}#" in key for key in keys)


def test_every_audited_region_of_a_member_is_swept_and_its_findings_land_in_that_region(monkeypatch):
    other = "us-east-1"
    with emulated_world(monkeypatch, org_env(A, AUDITED_REGIONS=f"{REGION},{other}")) as world:
        here, there = member(world, A), member(world, A, other)
        sts = Sts(world)
        planned = world.sweep_planner(scheduled())
        assert planned["scopes"] == 2 and planned["unreachable"] == []
        records = drain(world)
        assert sorted(
            (json.loads(r["body"])["region"], json.loads(r["body"])["cluster_arn"]) for r in records
        ) == sorted(
            [(REGION, arn) for arn in here.clusters.values()]
            + [(other, arn) for arn in there.clusters.values()]
        )
        assert world.sweep_worker({"Records": records}) == {"batchItemFailures": []}
        assert sts.count(A) == 1  # one role for every region of the account
        for region, m in ((REGION, here), (other, there)):
            hub = m.session.client("securityhub", region_name=region)
            found = [f for page in hub.get_paginator("get_findings").paginate() for f in page["Findings"]]
            assert found and {f["Region"] for f in found} == {region}
            assert all(f["Id"].startswith(f"fargate-audit/{A}/{region}/") for f in found)


def test_task_events_of_the_same_task_id_in_two_accounts_are_two_records_and_two_findings(org):
    world, a, b = org
    Sts(world)
    for m in (a, b):
        outcome = world.task_events(running_event(m, m.web[0], SAME_TASK_ID))
        assert outcome["status"] == "audited", outcome
        assert outcome["workload"] == "prod-web/service:web"
    arns = [f"arn:aws:ecs:{REGION}:{m.account}:task/prod-web/{SAME_TASK_ID}" for m in (a, b)]
    for arn in arns:
        latest = world.rt.recorder.latest(arn)
        assert latest["posture"]["account_id"] == arn.split(":")[4] and latest["posture"]["region"] == REGION
    ids = {m.account: set(m.findings()) for m in (a, b)}
    assert ids[A] and ids[B] and not (ids[A] & ids[B])
    assert {i.replace(A, "X") for i in ids[A]} == {i.replace(B, "X") for i in ids[B]}
    assert world.spy.metrics["AssumeRoleFailures"] == 0


def test_refused_role_is_an_error_dead_lettered_and_nothing_is_written(org):
    world, a, b = org
    sts = Sts(world, denied={B})
    event = running_event(b, b.web[0])
    secret = "hunter2-canary-5e1f"  # issue 10: dead-lettered with values redacted
    event["detail"]["overrides"] = {
        "containerOverrides": [{"name": "web", "environment": [{"name": "DB_PASSWORD", "value": secret}]}]
    }
    outcome = world.task_events(event)
    assert outcome["status"] == "failed" and outcome["account"] == B and outcome["dead_lettered"] is True
    assert outcome["error"].startswith("sts:AssumeRole: AccessDenied: ")
    assert f"arn:aws:iam::{B}:role/fargate-audit-member" in outcome["error"]
    assert world.spy.metrics["AssumeRoleFailures"] == 1
    (line,) = [x for x in world.spy.lines("error") if x[1].startswith("audited account unreachable")]
    assert line[2]["account"] == B and line[2]["region"] == REGION and "sts:AssumeRole" in line[2]["error"]
    assert EXTERNAL_ID not in json.dumps(world.spy.logs)
    (message,) = world.client("sqs").receive_message(QueueUrl=world.dlq_url, MessageAttributeNames=["All"])[
        "Messages"
    ]
    assert message["MessageAttributes"]["fargate-audit-rejected"]["StringValue"] == "assume-role"
    assert "sts:AssumeRole" in message["Body"]
    assert secret not in message["Body"] and secret not in json.dumps(world.spy.logs)
    assert table_keys(world) == set() and b.findings() == {}
    # the other account's events go on
    assert world.task_events(running_event(a, a.web[0]))["status"] == "audited"
    assert a.findings()
    assert sts.count(A) == 1


def test_a_config_change_of_an_account_whose_role_is_refused_is_counted_and_dead_lettered(org):
    world, a, b = org
    Sts(world, denied={B})
    event = json.loads((EVENTS / "config-security-group-change.json").read_text().replace(ACCOUNT, B))
    outcome = world.config_events(event)
    assert outcome["status"] == "failed" and outcome["account"] == B and outcome["dead_lettered"] is True
    assert outcome["error"].startswith("sts:AssumeRole: AccessDenied: ")
    assert world.spy.metrics["AssumeRoleFailures"] == 1
    (message,) = world.client("sqs").receive_message(QueueUrl=world.dlq_url)["Messages"]
    assert "sts:AssumeRole" in message["Body"] and table_keys(world) == set()


def test_a_config_change_of_an_account_whose_role_is_throttled_is_retried_not_dead_lettered(org):
    """Config sends no second event for a change: a throttled AssumeRole of the event's own
    account fails the invocation (Lambda retries it), where a refusal is dead-lettered."""
    from fargate_audit.app.service import RetryLater

    world, a, b = org
    sts = Sts(world, denied={B}, code="Throttling")
    event = json.loads((EVENTS / "config-security-group-change.json").read_text().replace(ACCOUNT, B))
    with pytest.raises(RetryLater, match="sts:AssumeRole: Throttling"):
        world.config_events(event)
    assert world.spy.metrics["FailedEvents"] == 1
    assert world.client("sqs").receive_message(QueueUrl=world.dlq_url).get("Messages", []) == []
    assert table_keys(world) == set() and sts.count(B) == 1


def test_wrong_external_id_is_refused_by_the_role(monkeypatch):
    with emulated_world(monkeypatch, org_env(A, MEMBER_EXTERNAL_ID="not-the-one")) as world:
        a = member(world, A)
        sts = Sts(world)
        outcome = world.task_events(running_event(a, a.web[0]))
        assert outcome["status"] == "failed" and "AccessDenied" in outcome["error"]
        assert sts.asked[0]["ExternalId"] == "not-the-one"
        assert a.findings() == {} and table_keys(world) == set()


def test_event_of_an_account_not_audited_is_refused_and_counted(org):
    world, _a, _b = org
    sts = Sts(world)
    outcome = world.task_events(world.running(world.web[0]))  # the central account: not audited
    assert (
        outcome["status"] == "rejected"
        and f"account {ACCOUNT} is not in the allowed accounts" in outcome["reason"]
    )
    assert world.spy.metrics["ForeignEvents"] == 1 and sts.asked == []
    assert table_keys(world) == set()


def test_one_unreachable_account_is_reported_and_the_sweep_goes_on(org):
    world, a, b = org
    Sts(world, denied={B})
    planned = world.sweep_planner(scheduled())
    (unreachable,) = planned["unreachable"]
    assert unreachable["account_id"] == B and unreachable["region"] == REGION
    assert unreachable["error"].startswith("sts:AssumeRole: AccessDenied")
    assert planned["messages"] == len(a.clusters)
    assert world.spy.metrics["UnreachableScopes"] == 1 and world.spy.metrics["AssumeRoleFailures"] == 1
    (line,) = [x for x in world.spy.lines("error") if "unreachable" in x[1]]
    assert line[2] == {"account": B, "region": REGION, "error": unreachable["error"]}
    # a worker batch holding messages of both: B's record fails (SQS retries it), A's are swept
    records = drain(world) + [
        sqs_record(
            "b-1", json.dumps({"account_id": B, "region": REGION, "cluster_arn": b.clusters["prod-web"]})
        )
    ]
    answer = world.sweep_worker({"Records": records})
    assert answer == {"batchItemFailures": [{"itemIdentifier": "b-1"}]}
    assert a.findings() and b.findings() == {}
    assert world.spy.metrics["UnreachableScopes"] == 2


def big_cluster(m: Member, tasks: int) -> tuple[str, list[str]]:
    """Cluster ``big`` in ``m``'s account running ``tasks`` tasks of service ``big`` (its
    own VPC, a /18 subnet: room for them); (its ARN, the task ARNs)."""
    b = estate._Builder(m.session, REGION)
    vpc = b.vpc("big", "10.30.0.0/16")
    subnet = b.subnet("big-a", vpc, "10.30.0.0/18", "a")
    sg = b.security_group("big", "big-tasks", "big service tasks")
    b.task_definition("big", [estate._container("big", "public.ecr.aws/nginx/nginx:1.27")])
    b.cluster("big", "enabled")
    arns = b.run_tasks("big", "big", [subnet], [sg], tasks, "1.4.0", service="big")
    return b.info.clusters["big"], arns


def refuse_list_tasks(monkeypatch, cluster_arn: str) -> None:
    """ECS refuses ListTasks on one cluster (AccessDeniedException), in whichever account."""
    from moto.core.exceptions import JsonRESTError
    from moto.ecs.models import EC2ContainerServiceBackend

    original = EC2ContainerServiceBackend.list_tasks

    def list_tasks(self, cluster_str=None, *more):
        if cluster_str == cluster_arn:
            raise JsonRESTError(
                "AccessDeniedException",
                f"not authorized to perform: ecs:ListTasks on resource: {cluster_arn}",
            )
        return original(self, cluster_str, *more)

    monkeypatch.setattr(EC2ContainerServiceBackend, "list_tasks", list_tasks)


def test_a_cluster_of_250_tasks_is_three_pages_of_100_100_and_50(org):
    world, a, b = org
    Sts(world)
    big, arns = big_cluster(a, 250)

    planned = world.sweep_planner(scheduled())

    pages = [json.loads(r["body"]) for r in drain(world)]
    big_pages = [p for p in pages if p["cluster_arn"] == big]
    assert sorted(len(p["task_arns"]) for p in big_pages) == [50, 100, 100]
    assert all(set(p) == {"account_id", "region", "cluster_arn", "task_arns"} for p in pages)
    assert all((p["account_id"], p["region"]) == (A, REGION) for p in big_pages)
    assert sorted(arn for p in big_pages for arn in p["task_arns"]) == sorted(arns)  # each task once
    # every other cluster holds fewer than 100 tasks: one page each
    assert len(pages) == 3 + len(a.clusters) + len(b.clusters) == planned["messages"]
    assert planned["tasks"] == 250 + 3 + 3 and planned["retiring"] == 0
    assert planned["api_calls"]["sqs.SendMessageBatch"] == 1  # 7 pages of at most 35 KB: one call
    assert world.spy.metrics["SweepMessagesSent"] == len(pages)


def test_a_cluster_whose_list_tasks_is_refused_is_reported_and_the_others_are_queued(org, monkeypatch):
    world, a, b = org
    Sts(world)
    refused = b.clusters["prod-web"]
    refuse_list_tasks(monkeypatch, refused)

    planned = world.sweep_planner(scheduled())

    (unreachable,) = planned["unreachable"]
    assert unreachable["account_id"] == B and unreachable["region"] == REGION
    assert unreachable["cluster_arn"] == refused
    assert unreachable["error"].startswith("ecs:ListTasks: AccessDeniedException: not authorized")
    bodies = [json.loads(r["body"]) for r in drain(world)]
    paged = [p["cluster_arn"] for p in bodies if "task_arns" in p]
    assert sorted(paged) == sorted([*a.clusters.values(), b.clusters["batch"]])
    # the refused cluster is left to a worker, whose listing SQS retries while it fails
    assert [p for p in bodies if "task_arns" not in p] == [
        {"account_id": B, "region": REGION, "cluster_arn": refused}
    ]
    assert planned["clusters"] == 4 and planned["messages"] == 4
    assert world.spy.metrics["UnreachableScopes"] == 1 and world.spy.metrics["AssumeRoleFailures"] == 0
    (line,) = [x for x in world.spy.lines("error") if "not listed" in x[1]]
    assert (
        line[1] == "audited cluster's tasks not listed: queued whole, for a worker to list (retried by SQS)"
    )
    assert line[2] == {"account": B, "region": REGION, "cluster_arn": refused, "error": unreachable["error"]}


def test_a_whole_cluster_message_of_a_planner_before_pages_is_still_swept(org, monkeypatch):
    world, a, _b = org
    Sts(world)
    list_tasks_as_aws(monkeypatch)
    first, second = a.web
    for task in a.web:
        assert world.task_events(running_event(a, task))["status"] == "audited"
    a.client("ecs").stop_task(cluster="prod-web", task=first.arn, reason="scale in")  # no event arrives
    old = {"account_id": A, "region": REGION, "cluster_arn": a.clusters["prod-web"]}  # no task_arns
    before = world.rt.clients.counter.snapshot()

    answer = world.sweep_worker({"Records": [sqs_record("old-1", json.dumps(old))]})

    assert answer == {"batchItemFailures": []}
    # the worker lists the cluster itself, audits what runs, and retires the stopped task on
    # its complete listing, as before pages
    assert world.rt.clients.counter.since(before)["ecs.ListTasks"] == 1
    assert world.rt.recorder.latest(first.arn)["lifecycle"] == "STOPPED"
    assert world.rt.recorder.history(first.arn)[-1]["cause"] == {
        "type": "sweep",
        "id": "old-1",
        "task_version": None,
        "event_time": None,
    }
    assert world.rt.recorder.latest(second.arn)["lifecycle"] == "RUNNING"
    assert world.spy.metrics["StoppedTasks"] == 1
    found = a.findings()[f"fargate-audit/{A}/{REGION}/prod-web/service:web/NET-02"]
    assert found["ProductFields"]["fargate-audit/TasksEvaluated"] == "1"


def test_no_reachable_account_fails_the_planner(org):
    world, _a, _b = org
    Sts(world, denied={A, B})
    with pytest.raises(service.SweepError, match="no audited account and region could be listed"):
        world.sweep_planner(scheduled())
    assert world.spy.metrics["UnreachableScopes"] == 2


def test_expired_credentials_mid_sweep_are_refreshed_and_the_sweep_goes_on(org):
    world, a, _b = org
    sts = Sts(world)
    first = {"account_id": A, "region": REGION, "cluster_arn": a.clusters["prod-web"]}
    assert world.sweep_worker({"Records": [sqs_record("m-1", json.dumps(first))]})["batchItemFailures"] == []
    assert sts.count(A) == 1
    # an hour later: the role's credentials are past their expiry
    session = world.rt.accounts.sessions._sessions[A]
    credentials = session.get_credentials()
    credentials._expiry_time = credentials._expiry_time.replace(year=2000)
    credentials._refresh_using.__self__._cache.clear()  # botocore's copy of the AssumeRole answer too
    second = first | {"cluster_arn": a.clusters["batch"]}
    assert world.sweep_worker({"Records": [sqs_record("m-2", json.dumps(second))]})["batchItemFailures"] == []
    assert sts.count(A) == 2  # refreshed once, the same session kept
    assert world.rt.accounts.sessions._sessions[A] is session
    assert credentials._expiry_time.year > 2000


def test_a_call_answered_expired_token_renews_the_role_once_and_the_sweep_goes_on(org, monkeypatch):
    world, a, _b = org
    sts = Sts(world)
    expired = ExpiredTokens(monkeypatch, A, "ecs.ListTasks")  # before the credentials' local expiry
    body = {"account_id": A, "region": REGION, "cluster_arn": a.clusters["prod-web"]}
    answer = world.sweep_worker({"Records": [sqs_record("m-1", json.dumps(body))]})
    assert answer == {"batchItemFailures": []}
    assert expired.answered == 1 and expired.code == "ExpiredTokenException"
    assert sts.count(A) == 2  # the first AssumeRole, and one renewal: the call retried with it
    assert f"fargate-audit/{A}/{REGION}/prod-web/service:web/NET-01" in a.findings()
    session = world.rt.accounts.sessions._sessions[A]  # the same session, its credentials renewed
    assert session.get_credentials().generation == 2
    # the next message is read with the renewed credentials: no more AssumeRole
    body = body | {"cluster_arn": a.clusters["batch"]}
    assert world.sweep_worker({"Records": [sqs_record("m-2", json.dumps(body))]})["batchItemFailures"] == []
    assert sts.count(A) == 2


def test_a_call_answered_expired_token_twice_fails_as_rejected_credentials(org, monkeypatch):
    world, a, b = org
    sts = Sts(world)
    expired = ExpiredTokens(monkeypatch, A, "ecs.ListTasks", times=2)
    records = [
        sqs_record(m.account, json.dumps({"account_id": m.account, "region": REGION, "cluster_arn": arn}))
        for m, arn in ((a, a.clusters["prod-web"]), (b, b.clusters["prod-web"]))
    ]
    answer = world.sweep_worker({"Records": records})
    assert answer == {"batchItemFailures": [{"itemIdentifier": A}]}  # SQS delivers it again
    assert expired.answered == 2 and sts.count(A) == 2  # one renewal for the call, not more
    assert a.findings() == {} and b.findings() and sts.count(B) == 1
    # the record's error: the rejected credentials, as before renewals existed
    expired = ExpiredTokens(monkeypatch, A, "ecs.ListTasks", times=2)
    body = json.loads(records[0]["body"])
    with pytest.raises(
        CredentialsError, match="AWS rejected the credentials: ListTasks: ExpiredTokenException"
    ):
        service.sweep_cluster(body, world.rt, lambda_handlers._now())
    assert expired.answered == 2 and sts.count(A) == 3


def test_duplicated_accounts_are_audited_once(monkeypatch):
    with emulated_world(monkeypatch, org_env(f"{A},{A}, {A}")) as world:
        a = member(world, A)
        Sts(world)
        planned = world.sweep_planner(scheduled())
        assert planned["scopes"] == 1 and planned["messages"] == len(a.clusters)
        assert len(drain(world)) == len(a.clusters)


ORG_READER = f"arn:aws:iam::{ACCOUNT}:role/org-reader"


@contextmanager
def organization_world(monkeypatch):
    """An emulated world whose functions list the accounts of the organization it creates
    (ORGANIZATIONS_ROLE_ARN): (world, the Organizations client)."""
    env = {
        "ORGANIZATIONS_ROLE_ARN": ORG_READER,
        "AWS_LAMBDA_FUNCTION_NAME": FUNCTION,
        "MEMBER_EXTERNAL_ID": EXTERNAL_ID,
    }
    with emulated_world(monkeypatch, env) as world:
        organizations = world.session.client("organizations", region_name="us-east-1")
        organizations.create_organization(FeatureSet="ALL")
        yield world, organizations


def test_organization_accounts_are_the_active_ones(monkeypatch):
    org_role = ORG_READER
    with organization_world(monkeypatch) as (world, organizations):
        live, gone = (
            organizations.create_account(AccountName=n, Email=f"{n}@example.com")["CreateAccountStatus"][
                "AccountId"
            ]
            for n in ("live", "gone")
        )
        organizations.close_account(AccountId=gone)
        sts = Sts(world)
        # an event of the suspended account is refused and counted
        outcome = world.task_events(running_event(Member(gone, None, {}, []), world.web[0]))
        assert (
            outcome["status"] == "rejected" and f"account {gone} is not in the allowed" in outcome["reason"]
        )
        assert world.spy.metrics["ForeignEvents"] == 1
        audited = set(world.rt.audited.ids())
        assert live in audited and ACCOUNT in audited and gone not in audited
        # the schedule: every ACTIVE account (the management account with its own role)
        planned = world.sweep_planner(scheduled())
        assert planned["unreachable"] == [] and planned["accounts"] == len(audited)
        assert planned["messages"] == len(world.clusters)  # only the management account has clusters
        assert world.rt.audited.lookups == 1  # listed once, cached for the container's life
        assert [p["RoleArn"] for p in sts.asked if p["RoleArn"] == org_role] == [org_role]
        assert sts.count(ACCOUNT) == 1  # the organization role only: the own account needs no member role


def test_a_failed_refresh_of_the_account_list_names_its_call_keeps_the_list_and_is_logged(monkeypatch):
    """The listing under OUs fails (ListAccountsForParent throttled): the error names that
    call (it said ListAccounts), the previous list stays in use, the handler logs one
    warning and counts it, and the next attempt waits a minute instead of every event."""
    from botocore.exceptions import ClientError
    from fargate_audit.edge import accounts

    with organization_world(monkeypatch) as (world, _):
        Sts(world)
        audited = world.rt.audited
        listed = audited.ids()
        assert ACCOUNT in listed and audited.lookups == 1

        def throttled(client, parents):
            error = {"Error": {"Code": "TooManyRequestsException", "Message": "rate"}}
            raise ClientError(error, "ListAccountsForParent")

        monkeypatch.setattr(accounts, "organization_accounts", throttled)
        clock = [audited._clock() + audited.ttl + 1]  # the list has expired
        audited._clock = lambda: clock[0]

        world.task_events(world.running(world.web[0]))

        assert audited.ids() == listed and audited.lookups == 1
        assert audited.error == "organizations:ListAccountsForParent: TooManyRequestsException: rate"
        (warning,) = [line for line in world.spy.lines("warning") if "account list" in line[1]]
        assert warning[2]["error"] == audited.error
        assert world.spy.metrics["AccountListFailures"] == 1
        failures = audited.failures
        assert failures == 1  # once for the whole event, not at each of its reads of the list
        clock[0] += accounts.LIST_RETRY_SECONDS - 1
        audited.ids()
        assert audited.failures == failures  # not tried again within the minute
        clock[0] += 2
        audited.ids()
        assert audited.failures == failures + 1


def test_the_organizations_role_is_assumed_with_the_member_external_id(monkeypatch):
    # templates/organizations-reader.yaml trusts the functions with the central stack's
    # MemberExternalId (when it has one), as the member roles do
    org_role = f"arn:aws:iam::{ACCOUNT}:role/fargate-audit-organizations"
    env = {
        "ORGANIZATIONS_ROLE_ARN": org_role,
        "MEMBER_EXTERNAL_ID": EXTERNAL_ID,
        "AWS_LAMBDA_FUNCTION_NAME": FUNCTION,
    }
    with emulated_world(monkeypatch, env) as world:
        organizations = world.session.client("organizations", region_name="us-east-1")
        organizations.create_organization(FeatureSet="ALL")
        live = organizations.create_account(AccountName="live", Email="live@example.com")
        sts = Sts(world)  # AccessDenied without the ExternalId
        assert live["CreateAccountStatus"]["AccountId"] in world.rt.audited.ids()
        (asked,) = sts.asked
        assert asked == {"RoleArn": org_role, "RoleSessionName": FUNCTION, "ExternalId": EXTERNAL_ID}


def test_settings_are_checked_and_unset_means_one_account():
    with pytest.raises(ConfigError, match="AUDITED_ACCOUNTS: '1234' is not a 12-digit account id"):
        lambda_handlers._organization_settings({"AUDITED_ACCOUNTS": "1234"})
    with pytest.raises(ConfigError, match="MEMBER_ROLE_NAME"):
        lambda_handlers._organization_settings({"AUDITED_ACCOUNTS": A, "MEMBER_ROLE_NAME": "bad name"})
    with pytest.raises(ConfigError, match="MEMBER_EXTERNAL_ID is not set: the member roles"):
        lambda_handlers._organization_settings({"AUDITED_ACCOUNTS": A})
    with pytest.raises(ConfigError, match="MEMBER_EXTERNAL_ID is not set"):
        lambda_handlers._organization_settings(
            {"ORGANIZATIONS_ROLE_ARN": ORG_READER, "MEMBER_EXTERNAL_ID": " "}
        )
    with pytest.raises(ConfigError, match="without ORGANIZATIONS_ROLE_ARN"):
        lambda_handlers._organization_settings(
            {"AUDITED_ACCOUNTS": A, "AUDITED_ORGANIZATIONAL_UNITS": "ou-ab12-cdefgh34"}
        )
    assert (
        lambda_handlers._organization_settings({"MEMBER_ROLE_NAME": "x", "MEMBER_EXTERNAL_ID": "y-z"}) == {}
    )
    with pytest.raises(ConfigError, match="set one"):
        lambda_handlers.build_runtime(
            {"TABLE_NAME": "t", "AUDITED_ACCOUNTS": A, "AUDIT_ROLE_ARN": f"arn:aws:iam::{B}:role/r"}
        )


@pytest.mark.parametrize("function", ["dns_logs", "flow_logs"])
def test_the_log_functions_know_their_own_account_and_read_it_without_a_member_role(monkeypatch, function):
    """The log functions run without a deadline, but their own account (the central one,
    audited with the others) is still read and imported with their own role: no AssumeRole
    of a member role the central account may not have."""
    with emulated_world(monkeypatch, org_env(f"{ACCOUNT},{A}")) as world:
        sts = Sts(world)
        assert getattr(world, function)(control_message())["status"] == "ignored"

        assert world.rt.own_account == ACCOUNT == world.rt.accounts.sessions.own_account
        world.rt.publisher.client_for(ACCOUNT, REGION)  # its findings' import client
        assert sts.count(ACCOUNT) == 0


def test_the_regions_whose_events_are_audited_are_the_regions_swept_when_both_lists_are_set():
    """AUDITED_REGIONS within ALLOWED_REGIONS, as for accounts: before, events used
    ALLOWED_REGIONS alone and the sweep AUDITED_REGIONS alone, so a region of one list
    only was swept but its events refused, or the reverse."""
    from types import SimpleNamespace

    rt = SimpleNamespace(
        audited_regions=frozenset({"eu-west-1", "us-east-1"}),
        allowed_regions=frozenset({"eu-west-1", "ap-south-1"}),
        region="eu-west-1",
        audited=None,
        allowed_accounts=frozenset({"111111111111"}),
        audit_role_account=None,
        own_account="123456789012",
    )
    assert service.allowed_regions(rt) == {"eu-west-1"}
    assert service.sweep_scopes(rt) == [("111111111111", "eu-west-1")]
    one_list = SimpleNamespace(**{**vars(rt), "allowed_regions": frozenset()})
    assert service.allowed_regions(one_list) == {"eu-west-1", "us-east-1"}
    assert [r for _, r in service.sweep_scopes(one_list)] == ["eu-west-1", "us-east-1"]
    neither = SimpleNamespace(**{**vars(one_list), "audited_regions": frozenset()})
    assert service.allowed_regions(neither) == {"eu-west-1"}
    assert service.sweep_scopes(neither, "us-east-1") == [("111111111111", "us-east-1")]


def test_an_account_no_longer_audited_has_its_tasks_retired_and_its_findings_archived(org, monkeypatch):
    """A member removed from AuditedAccounts (or a region from AuditedRegions, or a
    suspended account): its events are refused from then on and no scope of it is swept,
    so its findings stayed ACTIVE for ever and its tasks RUNNING. The next sweep queues its
    workloads to a worker that retires them and archives their findings."""
    from support.sessions import new_session

    world, a, b = org
    Sts(world)
    world.sweep_planner(scheduled())
    assert world.sweep_worker({"Records": drain(world)}) == {"batchItemFailures": []}
    assert {f["RecordState"] for f in b.findings().values()} == {"ACTIVE"}

    monkeypatch.setenv("AUDITED_ACCOUNTS", A)  # the stack redeployed: B no longer audited
    session = new_session()
    world.calls.attach(session)
    world.rt = lambda_handlers.build_runtime(session=session, logger=world.spy)
    lambda_handlers.set_runtime(world.rt)
    Sts(world)
    planned = world.sweep_planner(scheduled())
    assert planned["scopes"] == 1 and planned["no_longer_audited_workloads"] == 2  # B's web and etl
    records = drain(world)
    dropped = [json.loads(r["body"]) for r in records if json.loads(r["body"]).get("no_longer_audited")]
    assert {(m["account_id"], m["region"]) for m in dropped} == {(B, REGION)}
    assert world.sweep_worker({"Records": records}) == {"batchItemFailures": []}

    assert {f["RecordState"] for f in b.findings().values()} == {"ARCHIVED"}
    assert {f["RecordState"] for f in a.findings().values()} == {"ACTIVE"}
    assert all(world.rt.recorder.latest(t.arn)["lifecycle"] == "STOPPED" for t in b.web)
    assert not [k for k in world.rt.findings.active_workload_keys("fargate-audit/") if f"#{B}#" in k]
    assert world.sweep_planner(scheduled())["no_longer_audited_workloads"] == 0  # done once
