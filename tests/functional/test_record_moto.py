"""The recorder (record.Recorder) on moto DynamoDB, with the table made from template.yaml.

Ordering and idempotency (duplicates, out-of-order versions, STOPPED before RUNNING),
optimistic concurrency (two audits of one task interleaved), the dependency index, the
running set, history shape, finding state and the outbox (incl. UnprocessedItems)."""

from __future__ import annotations

import copy
import json
import uuid
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from fargate_audit.core import engine, rules
from fargate_audit.findings.state import FindingStore, finding_state
from fargate_audit.stores import keys, record
from fargate_audit.stores import table as dynamo
from fargate_audit.stores.record import Recorder
from fargate_audit.stores.table import RecordError, Table
from moto import mock_aws
from support.postures import BASE_POSTURE as BASE
from support.postures import open_port_22
from support.template import load_template, table_create_kwargs

REGION = "eu-west-1"
WL = "WL#123456789012#eu-west-1#prod#service:web"
T0 = datetime(2026, 3, 4, 5, 0, 0, tzinfo=UTC)
CATALOG = rules.load_catalog()


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def ecs(version: int, event_id: str | None = None) -> dict:
    return {
        "type": "ecs-event",
        "id": event_id or f"ev-{version}",
        "task_version": version,
        "event_time": None,
    }


def sweep(run: str = "s1") -> dict:
    return {"type": "sweep", "id": run, "task_version": None, "event_time": None}


def make_posture(n: int = 1, group: str = "service:web", **network) -> dict:
    p = copy.deepcopy(BASE)
    p["task_arn"] = f"arn:aws:ecs:{REGION}:123456789012:task/prod/{n:032x}"
    p["group"] = group
    p["workload"] = f"prod/{group}"
    p["service_name"] = group.split(":", 1)[1] if group.startswith("service:") else None
    p["network"]["eni_id"] = f"eni-{n:017x}"
    p["network"].update(network)
    return p


def results_of(posture: dict) -> list[dict]:
    return engine.evaluate(CATALOG, [posture]).results


@pytest.fixture(scope="module")
def aws():
    with mock_aws():
        yield boto3.client("dynamodb", region_name=REGION)


@pytest.fixture
def ddb(aws):
    """A fresh table made from template.yaml's PostureTable."""
    name = f"posture-{uuid.uuid4().hex[:8]}"
    aws.create_table(**table_create_kwargs(load_template(), name))
    yield aws, name
    aws.delete_table(TableName=name)


@pytest.fixture
def rec(ddb):
    client, name = ddb
    return Recorder(Table(name, client, sleep=lambda _: None))


@pytest.fixture
def store(ddb):
    client, name = ddb
    return FindingStore(Table(name, client, sleep=lambda _: None))


def raw_item(ddb, pk: str, sk: str) -> dict | None:
    client, name = ddb
    item = client.get_item(TableName=name, Key={"pk": {"S": pk}, "sk": {"S": sk}}).get("Item")
    return dynamo.from_attributes(item) if item else None


def all_items(ddb) -> list[dict]:
    client, name = ddb
    return [dynamo.from_attributes(i) for i in client.scan(TableName=name)["Items"]]


class Wrapped:
    """A real client with some methods replaced (the rest delegated)."""

    def __init__(self, real, **overrides):
        self._real = real
        self.__dict__.update(overrides)

    def __getattr__(self, name):
        return getattr(self._real, name)


# --------------------------------------------------------------------------- table


def test_the_table_under_test_is_the_templates_table(ddb):
    client, name = ddb
    table = client.describe_table(TableName=name)["Table"]
    assert {k["AttributeName"]: k["KeyType"] for k in table["KeySchema"]} == {"pk": "HASH", "sk": "RANGE"}
    assert [i["IndexName"] for i in table["GlobalSecondaryIndexes"]] == ["gsi1"]


# --------------------------------------------------------------------------- created / changed / unchanged


def test_first_audit_creates_latest_history_and_the_dependency_index(rec, ddb):
    p = make_posture()
    outcome = rec.record_audit(p, results_of(p), ecs(2), at(0))
    deps = record.dependencies(p)
    assert outcome.status == "created" and outcome.history_written
    assert outcome.writes == 4 + len(deps)  # LATEST, history, IP and ENI index
    latest = rec.latest(p["task_arn"])
    assert latest["lifecycle"] == "RUNNING" and latest["task_version"] == 2 and latest["rev"] == 1
    assert latest["posture"] == p and latest["results"] == results_of(p)
    assert latest["statuses"] == {r["rule_id"]: r["status"] for r in results_of(p)}
    for resource in deps:
        assert rec.tasks_for_resource(resource) == [p["task_arn"]]
    assert [t["task_arn"] for t in rec.running_tasks(WL)] == [p["task_arn"]]
    [entry] = rec.history(p["task_arn"])
    assert all(before is None for before, _ in entry["rules"].values())


def test_reaudit_of_an_unchanged_task_only_advances_observed_at(rec, ddb):
    p = make_posture()
    rec.record_audit(p, results_of(p), ecs(2), at(0))
    items_before = len(all_items(ddb))
    outcome = rec.record_audit(copy.deepcopy(p), results_of(p), sweep(), at(360))
    assert outcome.status == "unchanged" and outcome.writes == 1 and not outcome.history_written
    latest = rec.latest(p["task_arn"])
    assert latest["observed_at"] == dynamo.iso(at(360))
    assert latest["task_version"] == 2 and latest["rev"] == 2
    assert len(rec.history(p["task_arn"])) == 1
    assert len(all_items(ddb)) == items_before


def test_a_changed_posture_writes_one_history_entry_with_rule_and_fact_changes(rec):
    p = make_posture()
    rec.record_audit(p, results_of(p), ecs(2), at(0))
    opened = open_port_22(p)
    outcome = rec.record_audit(opened, results_of(opened), sweep(), at(10))
    assert outcome.status == "changed" and outcome.writes == 2
    assert outcome.rules == {"NET-03": ["PASSED", "FAILED"]}
    history = rec.history(p["task_arn"])
    assert len(history) == 2
    assert history[1]["rules"] == {"NET-03": ["PASSED", "FAILED"]}
    assert [f["path"] for f in history[1]["facts"]] == ["network.world_ingress"]
    assert history[1]["cause"] == sweep()
    assert rec.latest(p["task_arn"])["posture"] == opened


def test_history_is_oldest_first_in_the_interface_shape(rec):
    p = make_posture()
    opened = open_port_22(p)
    rec.record_audit(p, results_of(p), ecs(2), at(0))
    rec.record_audit(opened, results_of(opened), ecs(3), at(5))
    rec.record_audit(p, results_of(p), ecs(4), at(9))
    history = rec.history(p["task_arn"])
    assert [h["at"] for h in history] == [dynamo.iso(at(0)), dynamo.iso(at(5)), dynamo.iso(at(9))]
    assert all(set(h) == {"at", "cause", "rules", "facts"} for h in history)
    assert history[0]["rules"]["NET-03"] == [None, "PASSED"]
    assert {"path", "before", "after"} == set(history[0]["facts"][0])
    assert history[1]["rules"] == {"NET-03": ["PASSED", "FAILED"]}
    assert history[2]["rules"] == {"NET-03": ["FAILED", "PASSED"]}
    assert [h["cause"]["task_version"] for h in history] == [2, 3, 4]
    json.dumps(history)  # what `fargate-audit history --format json` prints


def test_history_items_expire_after_90_days(rec, ddb):
    p = make_posture()
    rec.record_audit(p, results_of(p), ecs(2), at(0))
    [hist] = [i for i in all_items(ddb) if i["sk"].startswith("HIST#")]
    assert hist["ttl"] == int((at(0) + timedelta(days=90)).timestamp())


# --------------------------------------------------------------------------- ordering and idempotency


def test_a_duplicate_ecs_event_writes_nothing(rec, ddb):
    p = make_posture()
    rec.record_audit(p, results_of(p), ecs(3, "ev-a"), at(0))
    before = all_items(ddb)
    outcome = rec.record_audit(p, results_of(p), ecs(3, "ev-a"), at(2))
    assert outcome.status == "stale" and "duplicate" in outcome.reason
    assert all_items(ddb) == before


def test_another_event_with_the_same_version_is_stale_and_writes_nothing(rec, ddb):
    """A second task event of a version already audited (another id: a late or re-sent
    event of the same task state) tells nothing new: it is stale, not audited again."""
    p = make_posture()
    rec.record_audit(p, results_of(p), ecs(3, "ev-a"), at(0))
    before = all_items(ddb)
    outcome = rec.record_audit(p, results_of(p), ecs(3, "ev-b"), at(2))
    assert outcome.status == "stale" and "already audited" in outcome.reason
    assert all_items(ddb) == before
    assert len(rec.history(p["task_arn"])) == 1


def test_an_out_of_order_older_version_is_stale(rec):
    p = make_posture()
    rec.record_audit(p, results_of(p), ecs(5), at(0))
    opened = open_port_22(p)
    outcome = rec.record_audit(opened, results_of(opened), ecs(3), at(1))
    assert outcome.status == "stale" and "older" in outcome.reason
    latest = rec.latest(p["task_arn"])
    assert latest["posture"] == p and latest["task_version"] == 5 and latest["rev"] == 1
    assert len(rec.history(p["task_arn"])) == 1


def test_an_audit_observed_before_the_recorded_one_is_stale(rec):
    p = make_posture()
    rec.record_audit(p, results_of(p), sweep("s2"), at(10))
    opened = open_port_22(p)
    outcome = rec.record_audit(opened, results_of(opened), sweep("s1"), at(5))
    assert outcome.status == "stale"
    assert rec.latest(p["task_arn"])["posture"] == p


def test_stopped_before_running_leaves_a_tombstone_and_the_late_running_is_stale(rec):
    p = make_posture()
    key = keys.workload_key_from_cluster_arn(p["cluster_arn"], p["group"])
    assert (
        rec.retire(p["task_arn"], 6, "2026-03-04T05:01:00Z", ecs(6), at(1), workload_key=key).workload_key
        == WL
    )
    outcome = rec.record_audit(p, results_of(p), ecs(4), at(2))
    assert outcome.status == "stale" and "STOPPED" in outcome.reason
    latest = rec.latest(p["task_arn"])
    assert latest["lifecycle"] == "STOPPED" and latest["posture"] is None
    assert rec.running_tasks(WL) == []
    assert rec.tasks_for_resource(p["network"]["eni_id"]) == []


def test_stop_removes_the_task_from_the_running_set_and_the_dependency_index(rec, ddb):
    p, other = make_posture(1), make_posture(2)
    for task in (p, other):
        rec.record_audit(task, results_of(task), ecs(2), at(0))
    assert rec.retire(p["task_arn"], 7, "2026-03-04T06:00:00Z", ecs(7), at(60)).workload_key == WL
    assert [t["task_arn"] for t in rec.running_tasks(WL)] == [other["task_arn"]]
    assert rec.tasks_for_resource(p["network"]["eni_id"]) == []
    assert rec.tasks_for_resource("sg-0123456789abcdef0") == [other["task_arn"]]
    latest = raw_item(ddb, f"TASK#{p['task_arn']}", "LATEST")
    assert latest["lifecycle"] == "STOPPED" and "gsi1pk" not in latest
    assert latest["ttl"] == int((at(60) + timedelta(days=30)).timestamp())
    last = rec.history(p["task_arn"])[-1]
    assert last["rules"] == {r["rule_id"]: [r["status"], None] for r in results_of(p)}
    assert last["facts"] == [{"path": "lifecycle", "before": "RUNNING", "after": "STOPPED"}]


def test_a_duplicate_stopped_is_a_noop(rec, ddb):
    p = make_posture()
    rec.record_audit(p, results_of(p), ecs(2), at(0))
    rec.retire(p["task_arn"], 7, None, ecs(7), at(60))
    before = all_items(ddb)
    assert rec.retire(p["task_arn"], 7, None, ecs(7), at(61)).workload_key == WL
    assert all_items(ddb) == before


def test_a_stopped_task_is_not_revived_by_a_later_reaudit(rec):
    p = make_posture()
    rec.record_audit(p, results_of(p), ecs(2), at(0))
    rec.retire(p["task_arn"], 7, None, ecs(7), at(60))
    assert rec.record_audit(p, results_of(p), ecs(9), at(70)).status == "stale"
    assert rec.record_audit(p, results_of(p), sweep(), at(80)).status == "stale"
    assert rec.running_tasks(WL) == []


# --------------------------------------------------------------------------- concurrency


def test_two_concurrent_audits_of_one_task_both_land_without_losing_history(ddb):
    client, name = ddb
    p = make_posture()
    Recorder(Table(name, client)).record_audit(p, results_of(p), ecs(2), at(0))
    writer_a = Recorder(Table(name, client))
    opened = open_port_22(p)
    public = copy.deepcopy(opened)
    public["network"].update(public_ipv4="203.0.113.9", public_address={"ipv4": True, "ipv6": False})

    reads = []

    def get_item_then_let_a_write(**kwargs):
        response = client.get_item(**kwargs)
        reads.append(kwargs)
        if len(reads) == 1:  # B has read; A now writes before B does
            assert writer_a.record_audit(opened, results_of(opened), sweep("a"), at(1)).status == "changed"
        return response

    writer_b = Recorder(
        Table(name, Wrapped(client, get_item=get_item_then_let_a_write), sleep=lambda _: None)
    )
    outcome = writer_b.record_audit(public, results_of(public), sweep("b"), at(2))
    assert outcome.status == "changed" and outcome.attempts == 2
    latest = writer_b.latest(p["task_arn"])
    assert latest["posture"] == public and latest["rev"] == 3
    history = writer_b.history(p["task_arn"])
    assert [h["cause"]["id"] for h in history] == ["ev-2", "a", "b"]
    assert history[1]["rules"] == {"NET-03": ["PASSED", "FAILED"]}
    assert history[2]["rules"] == {"NET-01": ["PASSED", "FAILED"]}  # diffed against A's write


def test_a_concurrent_older_audit_is_stale_after_its_retry(ddb):
    client, name = ddb
    p = make_posture()
    Recorder(Table(name, client)).record_audit(p, results_of(p), ecs(2), at(0))
    newer = open_port_22(p)
    done = []

    def get_item_then_let_a_write(**kwargs):
        response = client.get_item(**kwargs)
        if not done:
            done.append(
                Recorder(Table(name, client)).record_audit(newer, results_of(newer), sweep("new"), at(5))
            )
        return response

    older = copy.deepcopy(p)
    older["platform_version"] = "1.3.0"
    writer = Recorder(Table(name, Wrapped(client, get_item=get_item_then_let_a_write), sleep=lambda _: None))
    outcome = writer.record_audit(older, results_of(older), sweep("old"), at(3))
    assert outcome.status == "stale" and outcome.attempts == 2
    assert writer.latest(p["task_arn"])["posture"] == newer


def test_endless_concurrent_writers_raise_after_the_retry_bound(ddb):
    client, name = ddb
    p = make_posture()
    Recorder(Table(name, client)).record_audit(p, results_of(p), ecs(2), at(0))
    bumps = []

    def get_item_then_let_another_write(**kwargs):
        response = client.get_item(**kwargs)
        bumps.append(1)
        changed = copy.deepcopy(p)
        changed["platform_version"] = f"1.{len(bumps)}.0"
        Recorder(Table(name, client)).record_audit(
            changed, results_of(changed), sweep(f"x{len(bumps)}"), at(len(bumps))
        )
        return response

    sleeps = []
    writer = Recorder(
        Table(name, Wrapped(client, get_item=get_item_then_let_another_write), sleep=sleeps.append)
    )
    opened = open_port_22(p)
    with pytest.raises(RecordError, match="5 attempts"):
        writer.record_audit(opened, results_of(opened), sweep("late"), at(100))
    assert len(bumps) == 5 and len(sleeps) == 5


# --------------------------------------------------------------------------- dependency index


def test_the_dependency_index_follows_a_security_group_swap(rec):
    p = make_posture()
    rec.record_audit(p, results_of(p), ecs(2), at(0))
    swapped = make_posture(security_groups=[{"id": "sg-0ffffffffffffffff", "name": "web-v2"}])
    outcome = rec.record_audit(swapped, results_of(swapped), ecs(3), at(1))
    assert outcome.deps_added == ["sg-0ffffffffffffffff"]
    assert outcome.deps_removed == ["sg-0123456789abcdef0"]
    assert rec.tasks_for_resource("sg-0123456789abcdef0") == []
    assert rec.tasks_for_resource("sg-0ffffffffffffffff") == [p["task_arn"]]


def interface_endpoints(count: int) -> list[dict]:
    """``count`` Interface endpoints of a PrivateLink-heavy VPC: as many dependencies."""
    return [
        {
            "id": f"vpce-{i:017x}",
            "service_name": f"com.amazonaws.eu-west-1.svc{i}",
            "service": f"svc{i}",
            "type": "Interface",
            "state": "available",
            "route_table_ids": [],
            "policy": None,
            "policy_error": None,
        }
        for i in range(count)
    ]


def test_dependencies_beyond_one_transaction_are_all_indexed(rec):
    endpoints = interface_endpoints(120)
    p = make_posture(vpc_endpoints=endpoints)
    outcome = rec.record_audit(p, results_of(p), ecs(2), at(0))
    assert outcome.writes == 4 + len(record.dependencies(p)) > 100
    assert all(rec.tasks_for_resource(e["id"]) == [p["task_arn"]] for e in endpoints)


def test_dependencies_past_the_transaction_survive_a_failed_batch_write_and_its_retry(ddb):
    """The overflow past the 100-action transaction was written after LATEST committed:
    when that BatchWriteItem failed, the retry found the dependencies already named in
    LATEST, planned no put for them, and their index entries were never written."""
    client, name = ddb
    throttled = {"on": True}

    def batch_write(**kwargs):
        if throttled["on"]:  # a hot partition: nothing processed
            return {"UnprocessedItems": kwargs["RequestItems"]}
        return client.batch_write_item(**kwargs)

    rec = Recorder(Table(name, Wrapped(client, batch_write_item=batch_write), sleep=lambda _: None))
    endpoints = interface_endpoints(110)
    p = make_posture(vpc_endpoints=endpoints)
    with pytest.raises(RecordError, match="BatchWriteItem"):
        rec.record_audit(p, results_of(p), ecs(2), at(0))
    throttled["on"] = False  # the message is delivered again
    rec.record_audit(p, results_of(p), sweep("s2"), at(1))
    assert [d for d in record.dependencies(p) if rec.tasks_for_resource(d) != [p["task_arn"]]] == []


def test_tasks_for_resource_lists_every_task_sharing_it(rec):
    tasks = [make_posture(n) for n in range(1, 6)]
    for task in tasks:
        rec.record_audit(task, results_of(task), ecs(2), at(0))
    assert rec.tasks_for_resource("subnet-0c1d2e3f405162738") == sorted(t["task_arn"] for t in tasks)


# --------------------------------------------------------------------------- running set


def test_running_tasks_pages_through_the_workload_and_returns_full_results(ddb):
    client, name = ddb
    queries = []

    def query_one_item_per_page(**kwargs):
        queries.append(kwargs)
        return client.query(**{"Limit": 1, **kwargs})

    rec = Recorder(Table(name, Wrapped(client, query=query_one_item_per_page)))
    mine = [make_posture(n) for n in (1, 2, 3)]
    theirs = make_posture(4, group="family:batch")
    for task in [*mine, theirs]:
        rec.record_audit(task, results_of(task), ecs(2), at(0))
    running = rec.running_tasks(WL)
    assert [t["task_arn"] for t in running] == sorted(t["task_arn"] for t in mine)
    assert running[0]["results"] == results_of(mine[0])
    assert len(queries) >= 3  # paginated
    assert [t["task_arn"] for t in rec.running_tasks("WL#123456789012#eu-west-1#prod#family:batch")] == [
        theirs["task_arn"]
    ]


def test_the_sweep_planner_reads_running_arns_and_workloads_without_postures(ddb):
    client, name = ddb
    requests = []

    def query(**kwargs):
        requests.append(kwargs)
        return client.query(**kwargs)

    def batch_get_item(**kwargs):
        requests.append(kwargs)
        return client.batch_get_item(**kwargs)

    rec = Recorder(Table(name, Wrapped(client, query=query, batch_get_item=batch_get_item)))
    mine = [make_posture(n) for n in (1, 2, 3)]
    theirs = make_posture(4, group="family:batch")
    for task in [*mine, theirs]:
        rec.record_audit(task, results_of(task), ecs(2), at(0))
    rec.retire(mine[2]["task_arn"], 3, None, ecs(3), at(1))
    requests.clear()

    assert rec.running_task_arns(WL) == sorted(t["task_arn"] for t in mine[:2])
    never_recorded = make_posture(5)["task_arn"]
    arns = [t["task_arn"] for t in (mine[0], mine[2], theirs)] + [never_recorded]
    assert rec.workloads_of(arns) == sorted([WL, "WL#123456789012#eu-west-1#prod#family:batch"])
    # projected to keys: no posture crosses the wire
    assert [r.get("ProjectionExpression") for r in requests] == ["task_arn, #lifecycle", None]
    assert requests[1]["RequestItems"][name]["ProjectionExpression"] == "#workload"


def test_unprocessed_batch_get_keys_are_retried_then_raise(ddb):
    client, name = ddb
    calls = []

    def batch_get_half_then_all(**kwargs):
        keys = kwargs["RequestItems"][name]["Keys"]
        calls.append(len(keys))
        if len(calls) == 1:  # DynamoDB throttled: answers for the first key, hands back the rest
            answer = client.batch_get_item(RequestItems={name: {"Keys": keys[:1]}})
            return answer | {"UnprocessedKeys": {name: {"Keys": keys[1:]}}}
        return client.batch_get_item(**kwargs)

    sleeps = []
    rec = Recorder(Table(name, Wrapped(client, batch_get_item=batch_get_half_then_all), sleep=sleeps.append))
    tasks = [make_posture(n) for n in range(1, 151)]
    for task in tasks[:3]:
        rec.record_audit(task, results_of(task), ecs(2), at(0))
    assert rec.workloads_of([t["task_arn"] for t in tasks]) == [WL]
    assert calls == [100, 99, 50] and len(sleeps) == 1  # 100 keys a call

    def never_processed(**kwargs):
        return {"Responses": {}, "UnprocessedKeys": kwargs["RequestItems"]}

    stuck = Recorder(
        Table(name, Wrapped(client, batch_get_item=never_processed), batch_attempts=3, sleep=lambda _: None)
    )
    with pytest.raises(RecordError, match="BatchGetItem: 2 keys .* unprocessed after 3 attempts"):
        stuck.workloads_of([t["task_arn"] for t in tasks[:2]])


# --------------------------------------------------------------------------- finding state


def finding(rule: str, updated: str, state: str = "ACTIVE", group: str = "service:web") -> dict:
    return {
        "Id": f"fargate-audit/123456789012/eu-west-1/prod/{group}/{rule}",
        "UpdatedAt": updated,
        "CreatedAt": "2026-03-04T05:00:00.000Z",
        "RecordState": state,
        "Compliance": {"Status": "FAILED"},
        "Severity": {"Label": "HIGH"},
        "Title": f"title {rule}",
        "ProductFields": {"fargate-audit/RuleId": rule, "fargate-audit/Workload": f"prod/{group}"},
    }


def test_finding_state_only_moves_forward_in_updated_at(store):
    t1, t2, t3 = "2026-03-04T05:00:00.001Z", "2026-03-04T05:00:00.002Z", "2026-03-04T05:00:00.003Z"
    assert store.save_finding_state(WL, finding_state(finding("NET-03", t2)))
    assert not store.save_finding_state(WL, finding_state(finding("NET-03", t1)))
    assert not store.save_finding_state(WL, finding_state(finding("NET-03", t2)))
    assert store.finding_states(WL)["NET-03"]["updated_at"] == t2
    assert store.save_finding_state(WL, finding_state(finding("NET-03", t3)))
    state = store.finding_states(WL)["NET-03"]
    assert state["updated_at"] == t3 and state["finding"]["UpdatedAt"] == t3


def test_active_findings_lists_active_ones_with_workload_and_status(store):
    t = "2026-03-04T05:00:00.001Z"
    batch = "WL#123456789012#eu-west-1#prod#family:batch"
    store.save_finding_state(WL, finding_state(finding("NET-03", t)))
    store.save_finding_state(WL, finding_state(finding("NET-01", t, state="ARCHIVED")))
    store.save_finding_state(batch, finding_state(finding("NET-05", t, group="family:batch")))
    active = store.active_findings()
    assert [(f["workload"], f["rule_id"], f["status"]) for f in active] == [
        ("prod/family:batch", "NET-05", "FAILED"),
        ("prod/service:web", "NET-03", "FAILED"),
    ]
    assert set(store.finding_states(WL)) == {"NET-01", "NET-03"}


# --------------------------------------------------------------------------- outbox


def test_outbox_put_pending_and_clear(store):
    queued = [finding(f"R-{i:03d}", "2026-03-04T05:00:00.001Z") for i in range(30)]
    assert store.put_outbox(queued) == 30
    pending = store.pending_outbox()
    assert pending == sorted(queued, key=lambda f: f["Id"])
    assert len(store.pending_outbox(limit=7)) == 7
    assert store.pending_outbox(workload_key="WL#123456789012#eu-west-1#prod#family:batch") == []
    store.clear_outbox(pending[:26])
    assert store.pending_outbox() == pending[26:]


def test_outbox_keeps_each_version_until_that_version_is_cleared(store):
    v1 = finding("NET-03", "2026-03-04T05:00:00.001Z")
    v2 = finding("NET-03", "2026-03-04T05:00:00.002Z")
    store.put_outbox([v1])
    store.put_outbox([v2])
    store.clear_outbox([v1])  # a writer that delivered v1 does not delete v2
    assert store.pending_outbox() == [v2]


def test_unprocessed_batch_items_are_retried_with_backoff(ddb):
    client, name = ddb
    calls = []

    def batch_write_half_then_all(**kwargs):
        requests = kwargs["RequestItems"][name]
        calls.append(len(requests))
        if len(calls) == 1:  # DynamoDB throttled: processes half, hands back the rest
            client.batch_write_item(RequestItems={name: requests[:10]})
            return {"UnprocessedItems": {name: requests[10:]}}
        return client.batch_write_item(**kwargs)

    sleeps = []
    rec = FindingStore(
        Table(name, Wrapped(client, batch_write_item=batch_write_half_then_all), sleep=sleeps.append)
    )
    queued = [finding(f"R-{i:03d}", "2026-03-04T05:00:00.001Z") for i in range(25)]
    rec.put_outbox(queued)
    assert calls == [25, 15] and len(sleeps) == 1
    assert len(rec.pending_outbox()) == 25


def test_items_still_unprocessed_after_the_bound_raise(ddb):
    client, name = ddb

    def never_processed(**kwargs):
        return {"UnprocessedItems": kwargs["RequestItems"]}

    rec = FindingStore(
        Table(name, Wrapped(client, batch_write_item=never_processed), batch_attempts=4, sleep=lambda _: None)
    )
    with pytest.raises(RecordError, match="3 items .* unprocessed after 4 attempts"):
        rec.put_outbox([finding(f"R-{i}", "2026-03-04T05:00:00.001Z") for i in range(3)])
