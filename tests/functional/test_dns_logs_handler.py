"""The dns_logs handler on moto: Route 53 Resolver query logs (documented record format) in a
CloudWatch Logs subscription event, attributed to tasks through the IP index, aggregated,
written once per batch, and EGR-01 published per workload.

The world is support.world.build_world (table from template.yaml, Security Hub, an estate
with two `web` tasks and one `etl` task); the runtime's own session records every AWS call
(botocore's before-parameter-build), which is how writes are counted.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fargate_audit.app import dnslogs
from fargate_audit.core import engine
from fargate_audit.stores.discovery import DiscoveryStore
from support.env import ACCOUNT, REGION
from support.postures import task_posture
from support.spies import control_message
from support.world import emulated_world

WEB = "prod-web/service:web"
WEB_KEY = f"WL#{ACCOUNT}#{REGION}#prod-web#service:web"
ETL_KEY = f"WL#{ACCOUNT}#{REGION}#batch#family:etl"
UNATTRIBUTED_KEY = f"UNATTRIBUTED#{ACCOUNT}#{REGION}"
WRITE_OPERATIONS = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def record(vpc, ip, name, at, query_type="A", account=ACCOUNT) -> dict:
    """A Resolver query-log record in the documented format (Route 53 developer guide,
    "Resolver query log example")."""
    return {
        "version": "1.100000",
        "account_id": account,
        "region": REGION,
        "vpc_id": vpc,
        "query_timestamp": at,
        "query_name": name + ".",
        "query_type": query_type,
        "query_class": "IN",
        "rcode": "NOERROR",
        "answers": [{"Rdata": "203.0.113.9", "Type": query_type, "Class": "IN"}],
        "srcaddr": ip,
        "srcport": "56067",
        "transport": "UDP",
        "srcids": {"instance": "i-0d15cd0d3example"},
    }


def batch(records, first_id=0, stream="vpc-stream", messages=None) -> dict:
    events = [
        {"id": str(36_000_000_000 + first_id + i), "timestamp": 1_700_000_000_000, "message": json.dumps(r)}
        for i, r in enumerate(records)
    ]
    for i, message in enumerate(messages or []):
        events.append({"id": f"raw-{first_id}-{i}", "timestamp": 1_700_000_000_000, "message": message})
    return dnslogs.encode_subscription(
        {
            "messageType": "DATA_MESSAGE",
            "owner": ACCOUNT,
            "logGroup": "/aws/route53resolver/prod",
            "logStream": stream,
            "subscriptionFilters": ["fargate-audit-dns-logs"],
            "logEvents": events,
        }
    )


@pytest.fixture
def world(monkeypatch):
    with emulated_world(monkeypatch) as built:
        yield built


def dns(world, event):
    return world.dns_logs(event)


def store(world) -> DiscoveryStore:
    return DiscoveryStore(world.rt.recorder.table)


def counts(world, key) -> dict[tuple[str, str], int]:
    return {(d["name"], d["query_type"]): d["count"] for d in store(world).destinations(key)}


def running(world, *tasks):
    """RUNNING events of the tasks (the sample's cluster and group set to each task's own)."""
    for task in tasks:
        event = world.running(task)
        if task in world.etl:
            event["detail"] |= {"clusterArn": world.clusters["batch"], "group": "family:etl"}
        assert world.task_events(event)["status"] == "audited"


def now_stamp(offset_minutes: int = 0) -> str:
    return stamp(datetime.now(UTC) + timedelta(minutes=offset_minutes))


# --------------------------------------------------------------------------- attribution


def test_queries_are_attributed_to_the_task_that_held_the_address_and_unknown_ones_kept(world):
    web, etl = world.web[0], world.etl[0]
    running(world, web, etl)
    at = now_stamp()
    outcome = dns(
        world,
        batch(
            [
                record(world.vpc, web.private_ip, "API.ECR.eu-west-1.amazonaws.com", at),
                record(world.vpc, web.private_ip, "api.ecr.eu-west-1.amazonaws.com", at),
                record(world.vpc, web.private_ip, "api.ecr.eu-west-1.amazonaws.com", at, "AAAA"),
                record(world.vpc, etl.private_ip, "s3.eu-west-1.amazonaws.com", at),
                record(world.vpc, "10.20.9.250", "ntp.ubuntu.com", at),
            ]
        ),
    )

    assert outcome["status"] == "recorded" and outcome["malformed"] == []
    assert (outcome["attributed"], outcome["unattributed"]) == (4, 1)
    assert counts(world, WEB_KEY) == {
        ("api.ecr.eu-west-1.amazonaws.com", "A"): 2,  # case and trailing dot normalised
        ("api.ecr.eu-west-1.amazonaws.com", "AAAA"): 1,
    }
    assert counts(world, ETL_KEY) == {("s3.eu-west-1.amazonaws.com", "A"): 1}
    (unknown,) = store(world).destinations(UNATTRIBUTED_KEY)
    assert unknown["name"] == "ntp.ubuntu.com" and unknown["sources"] == ["10.20.9.250"]
    summaries = {s["workload"]: s for s in store(world).summaries()}
    assert set(summaries) == {WEB, "batch/family:etl", "unattributed"}
    assert summaries[WEB]["queries"] == 3


def _posture(task_arn: str, group: str, connectivity_at: str, vpc: str, ip: str) -> dict:
    return task_posture(task_arn, "prod-web", group, connectivity_at, vpc_id=vpc, private_ip=ip)


def test_an_address_reused_by_a_later_task_is_attributed_by_time(world):
    """Task A holds 10.9.0.7 from T0 until it stops at T1; task B gets the same address at
    T2. A query at T0+1m is A's, one between T1 and T2 nobody's, one after T2 B's."""
    vpc, ip = "vpc-0feed0000000000aa", "10.9.0.7"
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    t1, t2 = t0 + timedelta(minutes=30), t0 + timedelta(minutes=45)
    a = _posture(
        f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/prod-web/{'a' * 32}", "service:api", stamp(t0), vpc, ip
    )
    b = _posture(
        f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/prod-web/{'b' * 32}", "service:jobs", stamp(t2), vpc, ip
    )
    recorder = world.rt.recorder
    cause = {"type": "sweep", "id": "test", "task_version": None, "event_time": None}
    recorder.record_audit(
        a, engine.evaluate(world.rt.catalog, [a]).results, cause, t0 + timedelta(seconds=40)
    )
    recorder.retire(a["task_arn"], None, stamp(t1), cause, t1 + timedelta(seconds=5))
    recorder.record_audit(
        b, engine.evaluate(world.rt.catalog, [b]).results, cause, t2 + timedelta(seconds=40)
    )

    outcome = dns(
        world,
        batch(
            [
                record(vpc, ip, "pull.api.example", stamp(t0 + timedelta(seconds=20))),  # before A's audit
                record(vpc, ip, "a.example", stamp(t0 + timedelta(minutes=1))),
                record(vpc, ip, "a.example", stamp(t1)),  # the second A stopped: still A's
                record(vpc, ip, "gap.example", stamp(t1 + timedelta(minutes=5))),
                record(vpc, ip, "b.example", stamp(t2 + timedelta(minutes=1))),
                record(vpc, ip, "early.example", stamp(t0 - timedelta(minutes=1))),
            ]
        ),
    )

    assert (outcome["attributed"], outcome["unattributed"]) == (4, 2)
    api = f"WL#{ACCOUNT}#{REGION}#prod-web#service:api"
    jobs = f"WL#{ACCOUNT}#{REGION}#prod-web#service:jobs"
    assert counts(world, api) == {("pull.api.example", "A"): 1, ("a.example", "A"): 2}
    assert counts(world, jobs) == {("b.example", "A"): 1}
    assert set(counts(world, UNATTRIBUTED_KEY)) == {("gap.example", "A"), ("early.example", "A")}
    ranges = recorder.ip_ranges(vpc, ip, until=stamp(t2 + timedelta(hours=1)), since=stamp(t0))
    assert [(r["task_arn"][-1], r["from"], r["to"]) for r in ranges] == [
        ("b", stamp(t2), None),
        ("a", stamp(t0), stamp(t1)),
    ]
    # A's workload has no running task: no finding for it; B's gets one
    assert outcome["results"] == {f"{jobs}/EGR-01": "FAILED"}


def test_the_ip_index_starts_at_connectivity_and_is_closed_when_the_task_stops(world):
    task = world.web[0]
    running(world, task)
    latest = world.rt.recorder.latest(task.arn)
    vpc, ip = latest["posture"]["network"]["vpc_id"], latest["posture"]["network"]["private_ip"]
    connectivity = json.loads(
        (Path(__file__).resolve().parents[2] / "events" / "ecs-task-running.json").read_text()
    )["detail"]["connectivityAt"]
    (opened,) = world.rt.recorder.ip_ranges(vpc, ip, until=now_stamp(60))
    assert opened["from"] == connectivity[:19] + "Z" and opened["to"] is None
    assert latest["ip_index"]["sk"] == f"{opened['from']}#{task.arn}"

    world.task_events(world.running(task, version=5))  # a later audit opens nothing new
    assert len(world.rt.recorder.ip_ranges(vpc, ip, until=now_stamp(60))) == 1
    world.task_events(world.stopped(task))
    (closed,) = world.rt.recorder.ip_ranges(vpc, ip, until=now_stamp(60))
    stopped_at = json.loads(
        (Path(__file__).resolve().parents[2] / "events" / "ecs-task-stopped.json").read_text()
    )["detail"]["stoppedAt"]
    assert closed["from"] == opened["from"] and closed["to"] == stopped_at[:19] + "Z"


@pytest.mark.parametrize("with_ipv4", [True, False], ids=["dual-stack", "ipv6-only"])
def test_queries_from_a_tasks_ipv6_address_are_its_own_while_it_holds_it(world, with_ipv4):
    """A task's IPv6 addresses are indexed like its IPv4 one (rules.md EGR-01: the task's
    address, whatever its family): a query from one, written by Resolver in any IPv6 form,
    is the task's while it runs, nobody's after it stopped. They stayed unattributed."""
    vpc, ipv6 = "vpc-0feed0000000000ab", "2001:db8:1234::7"
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    t1 = t0 + timedelta(minutes=30)
    task = _posture(
        f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/prod-web/{'c' * 32}",
        "service:v6",
        stamp(t0),
        vpc,
        "10.9.0.9" if with_ipv4 else None,
    )
    task["network"]["ipv6_addresses"] = [ipv6]
    recorder = world.rt.recorder
    cause = {"type": "sweep", "id": "test", "task_version": None, "event_time": None}
    recorder.record_audit(
        task, engine.evaluate(world.rt.catalog, [task]).results, cause, t0 + timedelta(seconds=40)
    )
    recorder.retire(task["task_arn"], None, stamp(t1), cause, t1 + timedelta(seconds=5))

    outcome = dns(
        world,
        batch(
            [
                record(
                    vpc,
                    "2001:0db8:1234:0000:0000:0000:0000:0007",
                    "v6.example",
                    stamp(t0 + timedelta(minutes=1)),
                ),
                record(vpc, ipv6, "after.example", stamp(t1 + timedelta(minutes=5))),
            ]
        ),
    )

    assert (outcome["attributed"], outcome["unattributed"]) == (1, 1)
    assert counts(world, f"WL#{ACCOUNT}#{REGION}#prod-web#service:v6") == {("v6.example", "A"): 1}
    ranges = recorder.ip_ranges(vpc, ipv6, until=stamp(t1 + timedelta(hours=1)), since=stamp(t0))
    assert [(r["from"], r["to"]) for r in ranges] == [(stamp(t0), stamp(t1))]


def test_a_late_batch_keeps_a_destinations_first_and_last_seen_in_order(world):
    """Batches delivered out of order (a retried one is minutes late): first_seen stays the
    earliest query, last_seen the latest, on the destination and the summary."""
    task = world.web[0]
    running(world, task)
    latest = world.rt.recorder.latest(task.arn)
    vpc, ip = latest["posture"]["network"]["vpc_id"], latest["posture"]["network"]["private_ip"]
    early, late = now_stamp(-20), now_stamp(-5)

    dns(world, batch([record(vpc, ip, "api.example", late)], first_id=0))
    dns(world, batch([record(vpc, ip, "api.example", early)], first_id=10))
    dns(world, batch([record(vpc, ip, "api.example", now_stamp(-10))], first_id=20))

    key = latest["workload_key"]
    (dest,) = [d for d in store(world).destinations(key) if d["name"] == "api.example"]
    assert (dest["count"], dest["first_seen"], dest["last_seen"]) == (3, early, late)
    summary = store(world).summary(key)
    assert (summary["first_seen"], summary["last_seen"]) == (early, late)


# --------------------------------------------------------------------------- idempotency


def test_a_redelivered_batch_is_counted_once(world):
    web = world.web[0]
    running(world, web)
    event = batch([record(world.vpc, web.private_ip, "api.example.com", now_stamp())] * 3)
    first = dns(world, event)
    world.calls.reset()

    again = dns(world, json.loads(json.dumps(event)))

    assert first["status"] == "recorded" and again["status"] == "duplicate"
    assert again["chunks_skipped"] == again["chunks"] == 1 and again["item_writes"] == 0
    assert counts(world, WEB_KEY) == {("api.example.com", "A"): 3}
    assert world.spy.metrics["DuplicateDnsBatches"] == 1
    third = dns(
        world, batch([record(world.vpc, web.private_ip, "api.example.com", now_stamp())], first_id=99)
    )
    assert third["status"] == "recorded"
    assert counts(world, WEB_KEY) == {("api.example.com", "A"): 4}


def test_a_redelivery_keeps_the_first_deliverys_attribution(world):
    """Image pulls resolve before the task's RUNNING event is processed: a batch may arrive
    before the IP index knows the address. If it is redelivered after the audit landed,
    the first delivery's attribution (kept in chunk 0's marker) decides, so nothing moves
    from `unattributed` to the task, or is counted on both."""
    web = world.web[0]
    event = batch([record(world.vpc, web.private_ip, "registry-1.docker.io", now_stamp())])
    first = dns(world, event)
    running(world, web)  # the IP index now holds the address since connectivityAt

    again = dns(world, event)

    assert (first["attributed"], first["unattributed"]) == (0, 1)
    assert again["status"] == "duplicate" and (again["attributed"], again["unattributed"]) == (0, 1)
    assert counts(world, WEB_KEY) == {}
    assert counts(world, UNATTRIBUTED_KEY) == {("registry-1.docker.io", "A"): 1}
    fresh = dns(world, batch([record(world.vpc, web.private_ip, "registry-1.docker.io", now_stamp())], 50))
    assert fresh["attributed"] == 1 and counts(world, WEB_KEY) == {("registry-1.docker.io", "A"): 1}


def test_answers_are_kept_per_address_and_a_redelivery_writes_none_of_them_again(world):
    web = world.web[0]
    running(world, web)
    at = now_stamp()
    chained = record(world.vpc, web.private_ip, "bucket.s3.eu-west-1.amazonaws.com", at)
    chained["answers"] = [
        {"Rdata": "s3-r-w.eu-west-1.amazonaws.com.", "Type": "CNAME", "Class": "IN"},
        {"Rdata": "52.218.1.10", "Type": "A", "Class": "IN"},
    ]
    six = record(world.vpc, "10.20.9.250", "registry-1.docker.io", at, "AAAA")
    six["answers"] = [{"Rdata": "2600:1f18:4a3:6900:0:0:0:5", "Type": "AAAA", "Class": "IN"}]
    event = batch([chained, chained, six])
    first = dns(world, event)
    world.calls.reset()

    again = dns(world, json.loads(json.dumps(event)))

    assert first["answers"] == 2 and again["status"] == "duplicate" and again["item_writes"] == 0
    assert not [op for _, op, _ in world.calls.calls if op in WRITE_OPERATIONS]
    hour = at[:13]
    (mine,) = store(world).answers(world.vpc, "52.218.1.10", at, at)
    assert (mine["name"], mine["workload_key"], mine["task_arn"]) == (
        "bucket.s3.eu-west-1.amazonaws.com",
        WEB_KEY,
        web.arn,
    )
    assert (mine["first_seen"], mine["last_seen"]) == (at, at) and hour in at
    (theirs,) = store(world).answers(world.vpc, "2600:1f18:4a3:6900::5", at, at)
    assert (theirs["name"], theirs["workload_key"], theirs["task_arn"]) == (
        "registry-1.docker.io",
        UNATTRIBUTED_KEY,
        None,
    )
    assert store(world).answers(world.vpc, "s3-r-w.eu-west-1.amazonaws.com", at, at) == []
    assert store(world).answers("vpc-other", "52.218.1.10", at, at) == []


# --------------------------------------------------------------------------- malformed input


def test_malformed_records_are_counted_and_skipped_without_their_content(world):
    web = world.web[0]
    running(world, web)
    secretish = '{"query_name": "CANARY-SECRET.example.", "srcaddr": 7}'
    bad_time = json.dumps(record(world.vpc, web.private_ip, "x.example", "yesterday"))
    outcome = dns(
        world,
        batch(
            [record(world.vpc, web.private_ip, "ok.example", now_stamp())],
            messages=["not json at all", secretish, bad_time, json.dumps(["a", "list"])],
        ),
    )

    assert outcome["status"] == "recorded" and outcome["records"] == 1
    assert [m["id"] for m in outcome["malformed"]] == [f"raw-0-{i}" for i in range(4)]
    assert {m["reason"] for m in outcome["malformed"]} >= {
        "message is not JSON",
        "query_timestamp is not an ISO 8601 time",
    }
    assert "CANARY-SECRET" not in json.dumps(outcome) + json.dumps(world.spy.logs)
    assert world.spy.metrics["MalformedDnsRecords"] == 4
    assert counts(world, WEB_KEY) == {("ok.example", "A"): 1}


def test_control_messages_are_ignored_and_undecodable_events_rejected(world):
    control = control_message()
    assert dns(world, control)["status"] == "ignored"
    rejected = dns(world, {"awslogs": {"data": "bm90IGd6aXA="}})
    assert rejected["status"] == "rejected" and "gzipped JSON" in rejected["error"]
    assert world.spy.metrics["MalformedEvents"] == 1


# --------------------------------------------------------------------------- EGR-01


def test_egr_01_is_published_per_workload_with_the_unapproved_names(world):
    web, web2 = world.web
    etl = world.etl[0]
    running(world, web, web2, etl)
    at = now_stamp()
    outcome = dns(
        world,
        batch(
            [
                record(world.vpc, web.private_ip, "registry-1.docker.io", at),
                record(world.vpc, web2.private_ip, "telemetry.vendor.example", at),
                record(world.vpc, web.private_ip, "logs.eu-west-1.amazonaws.com", at),
                record(world.vpc, etl.private_ip, "sqs.eu-west-1.amazonaws.com", at),
            ]
        ),
    )

    assert outcome["results"] == {f"{WEB_KEY}/EGR-01": "FAILED", f"{ETL_KEY}/EGR-01": "PASSED"}
    finding = world.finding("EGR-01")
    assert finding["Compliance"]["Status"] == "FAILED" and finding["Severity"]["Label"] == "HIGH"
    assert "registry-1.docker.io" in finding["ProductFields"]["fargate-audit/Evidence"]
    assert "telemetry.vendor.example" in finding["Description"]
    assert finding["Resources"][0]["Type"] == "AwsEcsService"
    assert world.finding("EGR-01", "batch/family:etl")["Compliance"]["Status"] == "PASSED"
    assert not any(
        f["Id"].endswith("/EGR-01") and "unattributed" in f["Id"] for f in world.findings().values()
    )

    # a task event republishes the posture rules and leaves EGR-01 alone ...
    world.task_events(world.running(web, version=6))
    assert world.finding("EGR-01")["RecordState"] == "ACTIVE"
    # ... until the workload has no running task: then everything is archived
    world.task_events(world.stopped(web, version=8))
    world.task_events(world.stopped(web2, version=8))
    assert world.finding("EGR-01")["RecordState"] == "ARCHIVED"


def test_an_approved_name_in_a_later_batch_changes_no_finding(world):
    web = world.web[0]
    running(world, web)
    dns(world, batch([record(world.vpc, web.private_ip, "api.example.com", now_stamp())]))
    before = world.finding("EGR-01")
    outcome = dns(world, batch([record(world.vpc, web.private_ip, "sts.amazonaws.com", now_stamp())], 10))
    assert outcome["findings"]["imported"] == 0 and outcome["findings"]["unchanged"] == 1
    assert world.finding("EGR-01")["UpdatedAt"] == before["UpdatedAt"]


# --------------------------------------------------------------------------- bounded writes


def test_a_10000_record_batch_makes_a_bounded_number_of_writes(world):
    tasks = [*world.web, *world.etl]
    running(world, *tasks)
    base = datetime.now(UTC).replace(microsecond=0)
    names = [f"svc{n}.partner{n % 7}.example" for n in range(40)] + [f"s{n}.amazonaws.com" for n in range(10)]
    # two unknown hosts, outside the tasks' subnet (10.20.1.0/24, where moto picks task IPs)
    sources = [t.private_ip for t in tasks] + ["10.20.9.240", "10.20.9.241"]
    records = [
        record(
            world.vpc,
            sources[i % len(sources)],
            names[(i * 7) % len(names)],
            stamp(base - timedelta(seconds=i % 600)),
            "AAAA" if i % 3 == 0 else "A",
        )
        for i in range(10_000)
    ]
    world.calls.reset()

    outcome = dns(world, batch(records))

    writes = [(op, params) for service, op, params in world.calls.calls if op in WRITE_OPERATIONS]
    transactions = [params for op, params in writes if op == "TransactWriteItems"]
    workloads = len(outcome["workloads"])  # web, etl, unattributed
    # a destination update each, a summary each, an answer item each (one address here)
    actions = outcome["destinations"] + workloads + outcome["answers"]
    assert outcome["records"] == 10_000 and outcome["unattributed"] == 4000
    assert outcome["destinations"] <= 3 * len(names) * 2
    # the A answers: one item per (address, hour, name, source workload), not per record
    assert 0 < outcome["answers"] <= 2 * len(names) * 3
    assert len(transactions) == outcome["chunks"] == math.ceil(actions / dnslogs.CHUNK_ACTIONS)
    assert all(len(t["TransactItems"]) <= 100 for t in transactions)
    published = outcome["findings"]["workloads"]  # outbox, state, outbox cleared: 3 writes each
    assert len(writes) <= len(transactions) + 3 * published
    assert len(writes) <= 10, f"{len(writes)} write requests for 10,000 records"
    total = sum(counts(world, WEB_KEY).values()) + sum(counts(world, ETL_KEY).values())
    assert total + sum(counts(world, UNATTRIBUTED_KEY).values()) == 10_000
