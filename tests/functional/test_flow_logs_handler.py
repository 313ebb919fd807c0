"""The flow_logs handler on moto: VPC flow-log records (the documented custom format) in a
CloudWatch Logs subscription event, attributed by ENI to the task that owned it when the
flow started (the recorder's ENI index), filtered to internet egress, aggregated per
(workload, address, protocol, port, action) and written once per batch.

The world is support.world.build_world (table from template.yaml, an estate with two
`web` tasks and one `etl` task); the runtime's session records every AWS call.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta

import pytest
from fargate_audit.app import dnslogs, flowlogs
from fargate_audit.core import engine
from fargate_audit.stores.discovery import DiscoveryStore
from support.env import ACCOUNT, REGION
from support.postures import BASE_POSTURE
from support.world import emulated_world

WEB_KEY = f"WL#{ACCOUNT}#{REGION}#prod-web#service:web"
WRITE_OPERATIONS = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}
DEFAULT_FORMAT = (  # AWS's default format (version 2 fields): no flow-direction, no vpc-id
    "${version} ${account-id} ${interface-id} ${srcaddr} ${dstaddr} ${srcport} ${dstport} "
    "${protocol} ${packets} ${bytes} ${start} ${end} ${action} ${log-status}"
)


def epoch(moment: datetime) -> int:
    return int(moment.timestamp())


def flow(eni, src, dst, dport, *, at=None, proto=6, packets=10, size=1000, action="ACCEPT",
         direction="egress", status="OK", vpc="vpc-0a1b2c3d4e5f67890") -> str:  # fmt: skip
    """One record in the documented format (flowlogs.DOCUMENTED_FORMAT)."""
    start = epoch(at or datetime.now(UTC))
    return (
        f"5 {ACCOUNT} {eni} {src} {dst} 49152 {dport} {proto} {packets} {size} {start} {start + 50} "
        f"{action} {status} {vpc} {direction}"
    )


def nodata(eni) -> str:
    start = epoch(datetime.now(UTC))
    return f"5 {ACCOUNT} {eni} - - - - - - - {start} {start + 60} - NODATA vpc-0a1b2c3d4e5f67890 -"


def batch(messages, first_id=0, stream="eni-stream") -> dict:
    return dnslogs.encode_subscription(
        {
            "messageType": "DATA_MESSAGE",
            "owner": ACCOUNT,
            "logGroup": "/vpc/flow-logs/prod",
            "logStream": stream,
            "subscriptionFilters": ["fargate-audit-flow-logs"],
            "logEvents": [
                {"id": str(37_000_000_000 + first_id + i), "timestamp": 1_700_000_000_000, "message": m}
                for i, m in enumerate(messages)
            ],
        }
    )


@pytest.fixture
def world(monkeypatch):
    with emulated_world(monkeypatch) as built:
        yield built


def rows(world, key=WEB_KEY) -> dict[tuple, tuple]:
    """{(address, protocol, port, action): (flows, packets, bytes_out)}."""
    return {
        (f["address"], f["protocol"], f["port"], f["action"]): (f["flows"], f["packets"], f["bytes_out"])
        for f in DiscoveryStore(world.rt.recorder.table).flows(key)
    }


def running(world, *tasks):
    for task in tasks:
        assert world.task_events(world.running(task))["status"] == "audited"


def record_task(world, letter, group, eni, start, stop=None, ipv6=()):
    """A task recorded directly (its ENI index range from ``start``; closed at ``stop``)."""
    posture = copy.deepcopy(BASE_POSTURE)
    posture.update(
        task_arn=f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/prod-web/{letter * 32}",
        cluster_arn=f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/prod-web",
        cluster_name="prod-web",
        account_id=ACCOUNT,
        region=REGION,
        group=group,
        workload=f"prod-web/{group}",
        service_name=group.split(":", 1)[1],
        connectivity_at=start.strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    posture["network"].update(eni_id=eni, private_ip="10.9.0.7", ipv6_addresses=list(ipv6))
    cause = {"type": "sweep", "id": "test", "task_version": None, "event_time": None}
    recorder = world.rt.recorder
    recorder.record_audit(posture, engine.evaluate(world.rt.catalog, [posture]).results, cause, start)
    if stop is not None:
        recorder.mark_stopped(posture["task_arn"], None, stop.strftime("%Y-%m-%dT%H:%M:%SZ"), cause, stop)
    return f"WL#{ACCOUNT}#{REGION}#prod-web#{group}"


# --------------------------------------------------------------------------- attribution, filter


def test_internet_egress_of_a_tasks_eni_is_kept_per_destination_and_the_rest_counted(world):
    web = world.web[0]
    running(world, web)
    ip, eni = web.private_ip, web.eni
    outcome = world.flow_logs(
        batch(
            [
                flow(eni, ip, "52.94.1.1", 443, packets=10, size=5000),
                flow(eni, ip, "52.94.1.1", 443, packets=4, size=700),
                flow(eni, ip, "52.94.1.1", 53, proto=17, packets=1, size=80),
                flow(eni, ip, "198.51.100.7", 22, action="REJECT", packets=3, size=180),
                flow(eni, "203.0.113.5", ip, 8080, direction="ingress"),
                flow(eni, ip, "10.20.1.99", 5432),  # the VPC (RFC 1918)
                flow(eni, ip, "169.254.169.254", 80),  # link-local
                flow(eni, ip, "100.64.3.3", 443),  # shared address space
                flow("eni-0000000000000000f", "10.20.5.5", "52.94.1.1", 443),  # another ENI
                nodata(eni),
            ]
        )
    )

    assert outcome["status"] == "recorded" and outcome["records"] == 9 and outcome["no_data"] == 1
    assert (outcome["egress"], outcome["rejected"]) == (4, 1)
    assert (outcome["ingress"], outcome["private"], outcome["other_enis"]) == (1, 3, 1)
    assert rows(world) == {
        ("52.94.1.1", "tcp", 443, "ACCEPT"): (2, 14, 5700),
        ("52.94.1.1", "udp", 53, "ACCEPT"): (1, 1, 80),
        ("198.51.100.7", "tcp", 22, "REJECT"): (1, 3, 180),
    }
    assert world.spy.metrics["RejectedEgressFlowRecords"] == 1
    assert world.spy.metrics["NoDataFlowRecords"] == 1
    (summary,) = DiscoveryStore(world.rt.recorder.table).summaries()
    # every record of its ENI: 4 egress, 1 ingress, 3 private (flow data, EGR-03 evaluable)
    assert summary["workload_key"] == WEB_KEY and summary["flow_records"] == 8


def test_an_eni_reused_by_a_later_task_is_attributed_by_time_and_older_records_are_nobodys(world):
    """Task A owns the ENI from T0 until it stops at T1; task B gets it at T2. A flow at
    T0+1m is A's, one between T1 and T2 nobody's, one after T2 B's; one before T0 is older
    than the index remembers: nobody's."""
    eni = "eni-0feed00000000000a"
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    t1, t2 = t0 + timedelta(minutes=30), t0 + timedelta(minutes=45)
    api = record_task(world, "a", "service:api", eni, t0, stop=t1)
    jobs = record_task(world, "b", "service:jobs", eni, t2)

    outcome = world.flow_logs(
        batch(
            [
                flow(eni, "10.9.0.7", "52.1.1.1", 443, at=t0 + timedelta(minutes=1)),
                flow(eni, "10.9.0.7", "52.1.1.1", 443, at=t1 + timedelta(minutes=5)),
                flow(eni, "10.9.0.7", "52.2.2.2", 443, at=t2 + timedelta(minutes=1)),
                flow(eni, "10.9.0.7", "52.3.3.3", 443, at=t0 - timedelta(days=40)),
            ]
        )
    )

    assert (outcome["egress"], outcome["other_enis"]) == (2, 2)
    assert rows(world, api) == {("52.1.1.1", "tcp", 443, "ACCEPT"): (1, 10, 1000)}
    assert rows(world, jobs) == {("52.2.2.2", "tcp", 443, "ACCEPT"): (1, 10, 1000)}
    ranges = world.rt.recorder.eni_ranges(eni, until="2999-01-01T00:00:00Z", since="2000-01-01T00:00:00Z")
    assert [(r["task_arn"][-1], r["to"] is None) for r in ranges] == [("b", True), ("a", False)]


def test_ipv6_flows_and_a_format_without_flow_direction(world, monkeypatch):
    """The default format has no flow-direction: a record is egress when its source is one
    of the ENI's own addresses (IPv6 included); fd00::/8 and fe80::/10 are not internet."""
    monkeypatch.setattr(world.rt, "flow_log_format", DEFAULT_FORMAT)
    eni, own6 = "eni-0feed00000000000b", "2600:1f18:aaaa:bbbb::10"
    key = record_task(world, "c", "service:v6", eni, datetime.now(UTC) - timedelta(hours=1), ipv6=[own6])
    start = epoch(datetime.now(UTC))

    def v2(src, dst, port, size=100):
        return f"2 {ACCOUNT} {eni} {src} {dst} 40000 {port} 6 2 {size} {start} {start + 30} ACCEPT OK"

    outcome = world.flow_logs(
        batch(
            [
                v2(own6, "2606:4700:0:0:0:0:0:1111", 443, 600),  # written long: kept compressed
                v2("2606:4700::1111", own6, 40000),  # ingress: the source is not the ENI's
                v2(own6, "fd12:3456::1", 443),
                v2(own6, "fe80::1", 443),
                v2("10.9.0.7", "52.4.4.4", 443, 50),
            ]
        )
    )

    assert (outcome["egress"], outcome["ingress"], outcome["private"]) == (2, 1, 2)
    assert rows(world, key) == {
        ("2606:4700::1111", "tcp", 443, "ACCEPT"): (1, 2, 600),
        ("52.4.4.4", "tcp", 443, "ACCEPT"): (1, 2, 50),
    }


# --------------------------------------------------------------------------- bad input


def test_a_format_without_the_needed_fields_rejects_the_batch_naming_them(world, monkeypatch):
    web = world.web[0]
    running(world, web)
    monkeypatch.setattr(
        world.rt, "flow_log_format", "${version} ${interface-id} ${srcaddr} ${dstaddr} ${action}"
    )
    world.calls.reset()

    outcome = world.flow_logs(batch([flow(web.eni, web.private_ip, "52.94.1.1", 443)]))

    assert outcome["status"] == "rejected"
    assert "lacks the needed fields: dstport, protocol, bytes, start" in outcome["error"]
    assert world.spy.metrics["MalformedEvents"] == 1
    writes = [op for _, op, _ in world.calls.calls if op in WRITE_OPERATIONS]
    assert writes == [] and rows(world) == {}


def test_malformed_and_truncated_records_are_counted_and_skipped_without_their_content(world):
    web = world.web[0]
    running(world, web)
    good = flow(web.eni, web.private_ip, "52.94.1.1", 443)
    outcome = world.flow_logs(
        batch(
            [
                good,
                good.rsplit(" ", 3)[0],  # truncated
                good.replace(" 443 ", " https ", 1),
                good.replace("52.94.1.1", "CANARY-SECRET", 1),
                good.replace("ACCEPT", "MAYBE", 1),
                "",
            ]
        )
    )

    assert outcome["status"] == "recorded" and outcome["records"] == 1
    reasons = {m["reason"] for m in outcome["malformed"]}
    assert len(outcome["malformed"]) == 5
    assert {"13 fields where the format has 16", "dstport is not a number from 0 to 65535"} <= reasons
    assert "CANARY-SECRET" not in str(outcome) + str(world.spy.logs)
    assert world.spy.metrics["MalformedFlowRecords"] == 5
    assert rows(world) == {("52.94.1.1", "tcp", 443, "ACCEPT"): (1, 10, 1000)}


# --------------------------------------------------------------------------- idempotency


def test_a_redelivered_batch_is_counted_once(world):
    web = world.web[0]
    running(world, web)
    event = batch([flow(web.eni, web.private_ip, "52.94.1.1", 443)] * 3)
    first = world.flow_logs(event)
    world.calls.reset()

    again = world.flow_logs(event)

    assert first["status"] == "recorded" and again["status"] == "duplicate"
    assert again["item_writes"] == 0 and again["chunks_skipped"] == again["chunks"] == 1
    assert [op for _, op, _ in world.calls.calls if op in WRITE_OPERATIONS] == []
    assert rows(world) == {("52.94.1.1", "tcp", 443, "ACCEPT"): (3, 30, 3000)}
    assert world.spy.metrics["DuplicateFlowBatches"] == 1


def test_a_batch_that_fails_mid_write_is_retried_without_double_counting(world, monkeypatch):
    """300 destinations: 4 chunks. The third transaction fails (Lambda retries the
    event): the retry skips the two applied chunks by their markers and applies the rest,
    under the first delivery's attribution."""
    web = world.web[0]
    running(world, web)
    messages = [flow(web.eni, web.private_ip, f"52.95.{n // 250}.{n % 250}", 443) for n in range(300)]
    event = batch(messages)
    real, calls = DiscoveryStore.apply_chunk, []

    def failing(self, chunk, marker):
        calls.append(marker)
        if len(calls) == 3:
            raise RuntimeError("DynamoDB went away mid-batch")
        return real(self, chunk, marker)

    monkeypatch.setattr(DiscoveryStore, "apply_chunk", failing)
    with pytest.raises(RuntimeError):
        world.flow_logs(event)
    assert len(rows(world)) == 2 * flowlogs.CHUNK_ACTIONS - 1  # chunk 0 holds the summary too
    monkeypatch.setattr(DiscoveryStore, "apply_chunk", real)

    retry = world.flow_logs(event)

    assert retry["status"] == "recorded" and retry["chunks"] == 4
    assert (retry["chunks_skipped"], retry["chunks_written"]) == (2, 2)
    found = rows(world)
    assert len(found) == 300 and all(v == (1, 10, 1000) for v in found.values())
    (summary,) = DiscoveryStore(world.rt.recorder.table).summaries()
    assert summary["flow_records"] == 300
    assert world.flow_logs(event)["status"] == "duplicate"
    assert sum(v[0] for v in rows(world).values()) == 300


def test_control_messages_are_ignored_and_undecodable_events_rejected(world):
    control = dnslogs.encode_subscription(
        {
            "messageType": "CONTROL_MESSAGE",
            "owner": "CloudwatchLogs",
            "logGroup": "",
            "logStream": "",
            "logEvents": [],
        }
    )
    assert world.flow_logs(control)["status"] == "ignored"
    rejected = world.flow_logs({"awslogs": {"data": "bm90IGd6aXA="}})
    assert rejected["status"] == "rejected" and "gzipped JSON" in rejected["error"]


# --------------------------------------------------------------------------- EGR-03


def dns_answer(world, task, name, address, at, first_id=0):
    """A Resolver query-log batch in which ``task`` resolved ``name`` (a CNAME chain ending
    at ``address``) at ``at``, through the dns_logs function."""
    from test_dns_logs_handler import batch as dns_batch
    from test_dns_logs_handler import record

    query = record(world.vpc, task.private_ip, name, at.strftime("%Y-%m-%dT%H:%M:%SZ"))
    query["answers"] = [
        {"Rdata": f"{name}.cdn.example.", "Type": "CNAME", "Class": "IN"},
        {"Rdata": address, "Type": "A", "Class": "IN"},
    ]
    return world.dns_logs(dns_batch([query], first_id))


def test_egr_03_fails_on_traffic_to_an_address_nobody_resolved_and_passes_once_an_answer_names_it(world):
    from test_dns_logs_handler import running as running_as_their_own  # etl in batch/family:etl

    web, etl = world.web[0], world.etl[0]
    running_as_their_own(world, web, etl)
    started = datetime.now(UTC) - timedelta(minutes=5)
    outcome = world.flow_logs(
        batch(
            [
                flow(web.eni, web.private_ip, "52.94.1.1", 443, at=started, packets=40, size=38000),
                flow(web.eni, web.private_ip, "198.51.100.7", 4444, at=started, action="REJECT"),
                flow(etl.eni, etl.private_ip, "10.20.1.99", 5432),  # private only
            ]
        )
    )
    etl_key = f"WL#{ACCOUNT}#{REGION}#batch#family:etl"
    assert outcome["results"][f"{WEB_KEY}/EGR-03"] == "FAILED"
    assert outcome["results"][f"{etl_key}/EGR-03"] == "PASSED"  # flow data, no internet egress
    finding = world.finding("EGR-03")
    assert finding["Compliance"]["Status"] == "FAILED" and finding["Severity"]["Label"] == "HIGH"
    assert "52.94.1.1 tcp/443 (38000 bytes)" in finding["Description"]
    assert "198.51.100.7" not in finding["Description"]  # REJECTed: not traffic sent
    assert finding["ProductFields"]["fargate-audit/UnresolvedAddresses"] == "1"
    assert world.finding("EGR-03", "batch/family:etl")["Compliance"]["Status"] == "PASSED"

    # an answer seen after the flow started names nothing ...
    later = dns_answer(world, web, "api.partner.example", "52.94.1.1", datetime.now(UTC))
    assert later["results"][f"{WEB_KEY}/EGR-03"] == "FAILED"
    # ... one seen before it (delivered late: Resolver logs arrive minutes after) does
    earlier = dns_answer(world, web, "api.partner.example", "52.94.1.1", started - timedelta(minutes=3), 10)
    assert earlier["results"][f"{WEB_KEY}/EGR-03"] == "PASSED"
    assert world.finding("EGR-03")["Compliance"]["Status"] == "PASSED"


def test_egr_03_gives_no_result_to_a_workload_without_flow_data(world):
    from test_dns_logs_handler import running as running_as_their_own  # etl in batch/family:etl

    web, etl = world.web[0], world.etl[0]
    running_as_their_own(world, web, etl)
    outcome = world.flow_logs(batch([flow(web.eni, web.private_ip, "52.94.1.1", 443)]))
    assert f"{WEB_KEY}/EGR-03" in outcome["results"]
    assert not any(key.startswith(f"WL#{ACCOUNT}#{REGION}#batch#") for key in outcome["results"])
    from test_dns_logs_handler import batch as dns_batch
    from test_dns_logs_handler import now_stamp, record

    dns = world.dns_logs(
        dns_batch([record(world.vpc, etl.private_ip, "sqs.eu-west-1.amazonaws.com", now_stamp())])
    )
    etl_key = f"WL#{ACCOUNT}#{REGION}#batch#family:etl"
    assert dns["results"] == {f"{etl_key}/EGR-01": "PASSED"}  # no EGR-03 without flow data
    assert not [f for f in world.findings() if f.endswith("batch/family:etl/EGR-03")]


def test_approved_egress_cidrs_and_the_lookback_come_from_the_params(world, monkeypatch):
    web = world.web[0]
    running(world, web)
    started = datetime.now(UTC) - timedelta(minutes=5)
    dns_answer(world, web, "api.partner.example", "52.94.1.1", started - timedelta(hours=2))
    flows = batch([flow(web.eni, web.private_ip, "52.94.1.1", 443, at=started)])
    monkeypatch.setattr(world.rt, "params", {"dns_answer_lookback": "1h"})
    assert world.flow_logs(flows)["results"][f"{WEB_KEY}/EGR-03"] == "FAILED"  # the answer is older
    monkeypatch.setattr(
        world.rt, "params", {"dns_answer_lookback": "1h", "approved_egress_cidrs": ["52.94.0.0/16"]}
    )
    again = world.flow_logs(batch([flow(web.eni, web.private_ip, "52.94.1.1", 443, at=started)], 50))
    assert again["results"][f"{WEB_KEY}/EGR-03"] == "PASSED"
    monkeypatch.setattr(world.rt, "params", None)  # the default lookback, 24 h, reaches the answer
    third = world.flow_logs(batch([flow(web.eni, web.private_ip, "52.94.1.1", 443, at=started)], 90))
    assert third["results"][f"{WEB_KEY}/EGR-03"] == "PASSED"
