"""The flow_logs handler on moto: VPC flow-log records in a CloudWatch Logs subscription
event, read by the LogFormat of the flow log delivering to the event's log group
(ec2:DescribeFlowLogs, cached; FLOW_LOG_FORMAT or the documented format where none is
found), attributed by ENI to the task that owned it when the flow started (the recorder's
ENI index), filtered to internet egress, aggregated per (workload, address, protocol,
port, action) and written once per batch.

The world is support.world.build_world (table from template.yaml, an estate with two
`web` tasks and one `etl` task); the runtime's session records every AWS call. Flow logs
are created in the emulator as real ones (moto keeps LogFormat and filters on
log-group-name).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from botocore.stub import Stubber
from fargate_audit.app import dnslogs, flowlogs
from fargate_audit.cli import egress as egress_view
from fargate_audit.core import engine
from fargate_audit.edge import flowlog_lookup
from fargate_audit.edge.flowlog_lookup import FlowLogCache, FlowLogLookupError
from fargate_audit.stores.discovery import DiscoveryStore
from support.env import ACCOUNT, REGION
from support.postures import task_posture
from support.spies import control_message
from support.world import emulated_world

WEB_KEY = f"WL#{ACCOUNT}#{REGION}#prod-web#service:web"
GROUP = "/vpc/flow-logs/prod"  # the batches' log group
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


def batch(messages, first_id=0, stream="eni-stream", group=GROUP) -> dict:
    return dnslogs.encode_subscription(
        {
            "messageType": "DATA_MESSAGE",
            "owner": ACCOUNT,
            "logGroup": group,
            "logStream": stream,
            "subscriptionFilters": ["fargate-audit-flow-logs"],
            "logEvents": [
                {"id": str(37_000_000_000 + first_id + i), "timestamp": 1_700_000_000_000, "message": m}
                for i, m in enumerate(messages)
            ],
        }
    )


def create_flow_log(world, log_format: str | None = None, resource: str | None = None, group=GROUP) -> str:
    """A VPC (or subnet) flow log to CloudWatch Logs group ``group``; its id."""
    kind = "Subnet" if resource and resource.startswith("subnet-") else "VPC"
    extra = {"LogFormat": log_format} if log_format else {}
    response = world.client("ec2").create_flow_logs(
        ResourceIds=[resource or world.vpc],
        ResourceType=kind,
        TrafficType="ALL",
        LogDestinationType="cloud-watch-logs",
        LogGroupName=group,
        DeliverLogsPermissionArn=f"arn:aws:iam::{ACCOUNT}:role/vpc-flow-logs",
        **extra,
    )
    (flow_log_id,) = response["FlowLogIds"]
    return flow_log_id


def lookups(world) -> int:
    return world.calls.operations(["ec2"])["ec2.DescribeFlowLogs"]


def writes(world) -> list[str]:
    return [op for _, op, _ in world.calls.calls if op in WRITE_OPERATIONS]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


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
    posture = task_posture(
        f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/prod-web/{letter * 32}",
        "prod-web",
        group,
        start.strftime("%Y-%m-%dT%H:%M:%SZ"),
        eni_id=eni,
        private_ip="10.9.0.7",
        ipv6_addresses=list(ipv6),
    )
    cause = {"type": "sweep", "id": "test", "task_version": None, "event_time": None}
    recorder = world.rt.recorder
    recorder.record_audit(posture, engine.evaluate(world.rt.catalog, [posture]).results, cause, start)
    if stop is not None:
        recorder.retire(posture["task_arn"], None, stop.strftime("%Y-%m-%dT%H:%M:%SZ"), cause, stop)
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
    assert outcome["format_source"] == (  # no flow log in the emulator, FLOW_LOG_FORMAT unset
        "documented format (no flow log found for the log group, FLOW_LOG_FORMAT unset)"
    )
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


def test_a_batch_delivered_late_keeps_first_seen_the_earliest_start_and_last_seen_the_latest_end(world):
    """CloudWatch Logs delivers each ENI's stream on its own and a retried batch arrives
    minutes late: batches come out of order. first_seen stays the earliest flow start and
    last_seen the latest end, on the row and the workload's summary (a late batch wrote its
    own, older last_seen, and the row began at the later flow: EGR-03 looked back from it)."""
    web = world.web[0]
    running(world, web)
    ip, eni = web.private_ip, web.eni
    early = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=50)
    late = early + timedelta(minutes=40)

    world.flow_logs(batch([flow(eni, ip, "52.94.1.1", 443, at=late, size=300)], first_id=10))
    world.flow_logs(batch([flow(eni, ip, "52.94.1.1", 443, at=early, size=200)], first_id=20))
    world.flow_logs(batch([flow(eni, ip, "52.94.1.1", 443, at=early + timedelta(minutes=20))], first_id=30))

    store = DiscoveryStore(world.rt.recorder.table)
    (row,) = store.flows(WEB_KEY)
    stamp = "%Y-%m-%dT%H:%M:%SZ"
    assert (row["flows"], row["bytes_out"]) == (3, 1500)  # every batch counted once
    assert row["first_seen"] == early.strftime(stamp)
    assert row["last_seen"] == (late + timedelta(seconds=50)).strftime(stamp)
    summary = store.summary(WEB_KEY)
    assert (summary["first_seen"], summary["last_seen"]) == (row["first_seen"], row["last_seen"])


def test_a_batch_that_began_before_the_row_and_ends_after_it_moves_first_seen_earlier(world):
    """A batch holding a late flow and a new one ends after the row but began before it:
    first_seen stayed the row's (its update kept an existing first_seen), so a name kept
    for the later first flow covered traffic sent before any DNS answer."""
    web = world.web[0]
    running(world, web)
    ip, eni = web.private_ip, web.eni
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)
    world.flow_logs(batch([flow(eni, ip, "52.94.1.1", 443, at=start)], first_id=10))
    both = [
        flow(eni, ip, "52.94.1.1", 443, at=start - timedelta(minutes=4)),
        flow(eni, ip, "52.94.1.1", 443, at=start + timedelta(minutes=2)),
    ]
    world.flow_logs(batch(both, first_id=20))

    (row,) = DiscoveryStore(world.rt.recorder.table).flows(WEB_KEY)
    stamp = "%Y-%m-%dT%H:%M:%SZ"
    assert row["flows"] == 3
    assert row["first_seen"] == (start - timedelta(minutes=4)).strftime(stamp)
    assert row["last_seen"] == (start + timedelta(minutes=2, seconds=50)).strftime(stamp)
    summary = DiscoveryStore(world.rt.recorder.table).summary(WEB_KEY)
    assert (summary["first_seen"], summary["last_seen"]) == (row["first_seen"], row["last_seen"])


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


def test_ipv6_flows_and_a_format_without_flow_direction(world):
    """A flow log created without a LogFormat writes AWS's default format, which has no
    flow-direction: a record is egress when its source is one of the ENI's own addresses
    (IPv6 included); fd00::/8 and fe80::/10 are not internet."""
    flow_log = create_flow_log(world)  # no LogFormat: the default format
    (described,) = world.client("ec2").describe_flow_logs(FlowLogIds=[flow_log])["FlowLogs"]
    assert described["LogFormat"] == DEFAULT_FORMAT == flowlogs.AWS_DEFAULT_FORMAT  # as AWS answers
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

    assert outcome["format_source"] == f"flow log {flow_log}"
    assert (outcome["egress"], outcome["ingress"], outcome["private"]) == (2, 1, 2)
    assert rows(world, key) == {
        ("2606:4700::1111", "tcp", 443, "ACCEPT"): (1, 2, 600),
        ("52.4.4.4", "tcp", 443, "ACCEPT"): (1, 2, 50),
    }


def test_answers_on_connections_clients_opened_are_not_egress_and_portless_protocols_are_kept(world):
    """flow-direction is relative to the ENI, so a public task's answers to its clients are
    logged as its egress: with the clients' inbound records in the batch they are counted
    as replies, not destinations (a web task would otherwise 'egress' to every client's
    ephemeral port). A protocol without ports (ESP) has "-" there (AWS: a field that does
    not apply) and is kept, port 0."""
    create_flow_log(world, flowlogs.DOCUMENTED_FORMAT)
    eni, own = "eni-0feed00000000000c", "10.9.0.7"
    key = record_task(world, "d", "service:public", eni, datetime.now(UTC) - timedelta(hours=1))
    start = epoch(datetime.now(UTC))

    def record(src, dst, sport, dport, direction, proto=6, size=100):
        return (
            f"5 {ACCOUNT} {eni} {src} {dst} {sport} {dport} {proto} 2 {size} {start} {start + 30} "
            f"ACCEPT OK vpc-0a1b2c3d4e5f67890 {direction}"
        )

    outcome = world.flow_logs(
        batch(
            [
                record("198.51.100.10", own, 50000, 443, "ingress"),  # a client connects
                record(own, "198.51.100.10", 443, 50000, "egress", size=9000),  # the task answers
                record("198.51.100.11", own, 50001, 443, "ingress"),
                record(own, "198.51.100.11", 443, 50001, "egress"),
                record(own, "198.51.100.10", 49152, 443, "egress", size=300),  # the task's own call
                record(own, "203.0.113.5", "-", "-", "egress", proto=50, size=1200),  # ESP
            ]
        )
    )

    assert (outcome["egress"], outcome["ingress"], outcome["replies"]) == (2, 2, 2)
    assert rows(world, key) == {
        ("198.51.100.10", "tcp", 443, "ACCEPT"): (1, 2, 300),
        ("203.0.113.5", "50", 0, "ACCEPT"): (1, 2, 1200),
    }
    assert outcome["malformed"] == []


@pytest.mark.parametrize("with_flags", [False, True], ids=["ports", "tcp-flags"])
def test_a_connection_the_task_opened_is_egress_even_with_the_peers_replies_in_the_batch(world, with_flags):
    """AWS logs each direction of a connection as its own record: the task's call to
    198.51.100.23:4444 comes with the server's answers (ingress, 4444 -> the task's
    ephemeral port) in the same batch, which looked like a client's connection and dropped
    the call as a 'reply' (EGR-03 PASSED). The task opened it: by the handshake when the
    format has tcp-flags (its SYN without ACK), else by the ports (it called from the
    higher, ephemeral one). A connection a client opened stays a reply either way."""
    log_format = flowlogs.DOCUMENTED_FORMAT + (" ${tcp-flags}" if with_flags else "")
    create_flow_log(world, log_format)
    eni, own = "eni-0feed00000000000e", "10.9.0.9"
    key = record_task(world, "f", "service:caller", eni, datetime.now(UTC) - timedelta(hours=1))
    start = epoch(datetime.now(UTC))

    def record(src, dst, sport, dport, direction, flags, size=100):
        line = (
            f"5 {ACCOUNT} {eni} {src} {dst} {sport} {dport} 6 2 {size} {start} {start + 30} "
            f"ACCEPT OK vpc-0a1b2c3d4e5f67890 {direction}"
        )
        return line + (f" {flags}" if with_flags else "")

    outcome = world.flow_logs(
        batch(
            [
                record(own, "198.51.100.23", 49152, 4444, "egress", 3, size=5_000_000),  # SYN+FIN
                record("198.51.100.23", own, 4444, 49152, "ingress", 19),  # SYN-ACK+FIN
                record("198.51.100.30", own, 51000, 8080, "ingress", 3),  # a client connects
                record(own, "198.51.100.30", 8080, 51000, "egress", 19),  # the task answers it
            ]
        )
    )

    assert (outcome["egress"], outcome["ingress"], outcome["replies"]) == (1, 2, 1)
    assert rows(world, key) == {("198.51.100.23", "tcp", 4444, "ACCEPT"): (1, 2, 5_000_000)}


def test_a_call_to_a_server_on_a_port_above_the_tasks_own_is_egress(world):
    """A server may listen above the task's ephemeral port (55555 > 40000): the call came
    with the server's answers in the batch and, by 'the lower port is the service's', was
    dropped as a reply (EGR-03 PASSED on 5 MB to an address nobody resolved). Both ports
    ephemeral-looking cannot tell who opened it: egress. A service below the ephemeral
    range (8080) answering a client's ephemeral port stays a reply."""
    create_flow_log(world, flowlogs.DOCUMENTED_FORMAT)
    eni, own = "eni-0feed00000000000f", "10.9.0.10"
    key = record_task(world, "g", "service:exfil", eni, datetime.now(UTC) - timedelta(hours=1))
    start = epoch(datetime.now(UTC))

    def record(src, dst, sport, dport, direction, size=100):
        return (
            f"5 {ACCOUNT} {eni} {src} {dst} {sport} {dport} 6 2 {size} {start} {start + 30} "
            f"ACCEPT OK vpc-0a1b2c3d4e5f67890 {direction}"
        )

    outcome = world.flow_logs(
        batch(
            [
                record(own, "198.51.100.23", 40000, 55555, "egress", size=5_000_000),
                record("198.51.100.23", own, 55555, 40000, "ingress"),
                record("198.51.100.30", own, 51000, 8080, "ingress"),  # a client connects
                record(own, "198.51.100.30", 8080, 51000, "egress"),  # the task answers it
            ]
        )
    )

    assert (outcome["egress"], outcome["ingress"], outcome["replies"]) == (1, 2, 1)
    assert rows(world, key) == {("198.51.100.23", "tcp", 55555, "ACCEPT"): (1, 2, 5_000_000)}


def test_echo_replies_to_an_inbound_ping_are_not_egress_but_the_tasks_own_ping_is(world):
    """ICMP records carry ports 0 and 0 (AWS's documented ping example): the ports cannot
    tell who opened it, the times can when they differ. The echo replies to a scanner's
    ping (its inbound record started in an earlier second) are replies, not internet
    egress; a ping the task sent first is its egress, and so is an exchange both of whose
    records start in the same second."""
    create_flow_log(world, flowlogs.DOCUMENTED_FORMAT)
    eni, own = "eni-0feed00000000000d", "10.9.0.8"
    key = record_task(world, "g", "service:pinged", eni, datetime.now(UTC) - timedelta(hours=1))
    start = epoch(datetime.now(UTC))

    def record(src, dst, direction, at, size=84):
        return (
            f"5 {ACCOUNT} {eni} {src} {dst} 0 0 1 4 {size} {at} {at + 30} "
            f"ACCEPT OK vpc-0a1b2c3d4e5f67890 {direction}"
        )

    outcome = world.flow_logs(
        batch(
            [
                record("203.0.113.12", own, "ingress", start),  # a scanner pings the task
                record(own, "203.0.113.12", "egress", start + 1),  # the echo replies, later
                record(own, "198.51.100.40", "egress", start, size=168),  # the task pings first
                record("198.51.100.40", own, "ingress", start + 1),  # and gets its replies
                # the same second cannot tell who began: egress (an ICMP tunnel is not missed)
                record("198.51.100.50", own, "ingress", start),
                record(own, "198.51.100.50", "egress", start, size=252),
                # UDP between equal ports (NTP 123, WireGuard 51820): egress, as before
                record(own, "198.51.100.60", "egress", start).replace(" 0 0 1 ", " 51820 51820 17 "),
                record("198.51.100.60", own, "ingress", start + 1).replace(" 0 0 1 ", " 51820 51820 17 "),
            ]
        )
    )

    assert (outcome["egress"], outcome["ingress"], outcome["replies"]) == (3, 4, 1)
    assert rows(world, key) == {
        ("198.51.100.40", "icmp", 0, "ACCEPT"): (1, 4, 168),
        ("198.51.100.50", "icmp", 0, "ACCEPT"): (1, 4, 252),
        ("198.51.100.60", "udp", 51820, "ACCEPT"): (1, 4, 84),
    }


# --------------------------------------------------------------------------- the format of the log group

REORDERED = (  # a custom format, fields in another order, no vpc-id or version
    "${flow-direction} ${action} ${dstport} ${protocol} ${bytes} ${packets} ${start} ${end} "
    "${dstaddr} ${srcaddr} ${interface-id} ${log-status}"
)


def reordered(eni, src, dst, port, size, direction="egress", action="ACCEPT") -> str:
    start = epoch(datetime.now(UTC))
    return f"{direction} {action} {port} 6 {size} 3 {start} {start + 20} {dst} {src} {eni} OK"


def test_a_custom_format_in_another_order_is_read_by_the_flow_logs_own_log_format(world, monkeypatch):
    """The flow log found wins: FLOW_LOG_FORMAT (set here to the documented format, in
    which these records would all be malformed) is only the fallback."""
    web = world.web[0]
    running(world, web)
    flow_log = create_flow_log(world, REORDERED)
    monkeypatch.setattr(world.rt, "flow_log_format", flowlogs.DOCUMENTED_FORMAT)
    world.calls.reset()

    outcome = world.flow_logs(
        batch(
            [
                reordered(web.eni, web.private_ip, "52.94.1.1", 443, 900),
                reordered(web.eni, web.private_ip, "52.94.1.1", 443, 100),
                reordered(web.eni, web.private_ip, "198.51.100.7", 22, 60, action="REJECT"),
                reordered(web.eni, "203.0.113.5", web.private_ip, 8080, 10, direction="ingress"),
            ]
        )
    )

    assert outcome["status"] == "recorded" and outcome["format_source"] == f"flow log {flow_log}"
    assert (outcome["records"], outcome["malformed"], outcome["ingress"]) == (4, [], 1)
    assert rows(world) == {
        ("52.94.1.1", "tcp", 443, "ACCEPT"): (2, 6, 1000),
        ("198.51.100.7", "tcp", 22, "REJECT"): (1, 3, 60),
    }
    (call,) = [params for _, op, params in world.calls.calls if op == "DescribeFlowLogs"]
    assert call["Filter"] == [{"Name": "log-group-name", "Values": [GROUP]}]  # boto3's Filters


def test_a_format_without_packets_leaves_the_rows_packets_unknown_not_zero(world):
    """interface.md: packets is used when present. A format without it counted 0 packets
    for real traffic; the row now has none (null in JSON, - in the table)."""
    web = world.web[0]
    running(world, web)
    create_flow_log(
        world, "${interface-id} ${srcaddr} ${dstaddr} ${dstport} ${protocol} ${bytes} ${start} ${action}"
    )
    start = epoch(datetime.now(UTC))
    line = f"{web.eni} {web.private_ip} 203.0.113.80 443 6 48000 {start} ACCEPT"
    assert world.flow_logs(batch([line]))["status"] == "recorded"
    assert rows(world) == {("203.0.113.80", "tcp", 443, "ACCEPT"): (1, None, 48000)}
    (row,) = egress_view.flow_rows(DiscoveryStore(world.rt.recorder.table).flows(WEB_KEY))
    assert row["packets"] is None
    block = {"workload": "prod-web/service:web", "sites": [], "flows": [row], "account_id": ACCOUNT}
    text = egress_view.format_discovered([block | {"region": REGION}])
    line = next(line for line in text.splitlines() if "203.0.113.80" in line)
    assert "-" in line.split() and "0" not in line.split()


def test_no_flow_log_for_the_group_falls_back_to_flow_log_format(world, monkeypatch):
    """A flow log of another log group is not the batch's; none delivers to this one (as
    when the flow log is another account's): FLOW_LOG_FORMAT is read."""
    web = world.web[0]
    running(world, web)
    create_flow_log(world, REORDERED, group="/vpc/flow-logs/other")
    monkeypatch.setattr(world.rt, "flow_log_format", REORDERED)

    outcome = world.flow_logs(batch([reordered(web.eni, web.private_ip, "52.94.1.1", 443, 900)]))

    assert outcome["status"] == "recorded"
    assert outcome["format_source"] == "parameter (no flow log found for the log group)"
    assert rows(world) == {("52.94.1.1", "tcp", 443, "ACCEPT"): (1, 3, 900)}
    info = [extra for level, message, extra in world.spy.logs if message == "flow log batch recorded"]
    assert info[-1]["format_source"] == outcome["format_source"]


def test_flow_logs_of_different_formats_on_one_group_reject_the_batch_unless_the_parameter_says(
    world, monkeypatch
):
    web = world.web[0]
    running(world, web)
    vpc_log = create_flow_log(world)  # the default format
    subnet_log = create_flow_log(world, REORDERED, resource=world.subnet)
    ids = ", ".join(sorted([vpc_log, subnet_log]))
    event = batch([reordered(web.eni, web.private_ip, "52.94.1.1", 443, 900)])
    world.calls.reset()

    outcome = world.flow_logs(event)

    assert outcome["status"] == "rejected" and outcome["dead_lettered"] is True
    error = outcome["error"]
    assert error.startswith(f"log group {GROUP}: flow logs {ids} deliver to it in different formats")
    assert "FlowLogFormat" in error
    assert world.spy.metrics["MalformedEvents"] == 1 and world.spy.metrics["DeadLetteredEvents"] == 1
    assert writes(world) == [] and rows(world) == {}

    monkeypatch.setattr(world.rt, "flow_log_format", REORDERED)  # FLOW_LOG_FORMAT set: read by it
    chosen = world.flow_logs(event)

    assert chosen["status"] == "recorded"
    assert chosen["format_source"].startswith(f"parameter (flow logs {ids}")
    assert rows(world) == {("52.94.1.1", "tcp", 443, "ACCEPT"): (1, 3, 900)}


def test_the_groups_flow_logs_are_read_once_per_container_across_batches(world):
    web = world.web[0]
    running(world, web)
    flow_log = create_flow_log(world, REORDERED)
    other = "/vpc/flow-logs/other"
    world.calls.reset()

    outcomes = [
        world.flow_logs(batch([reordered(web.eni, web.private_ip, f"52.94.1.{n}", 443, 900)], stream=f"s{n}"))
        for n in range(3)
    ]
    outcomes.append(world.flow_logs(batch([flow(web.eni, web.private_ip, "52.94.2.1", 443)], group=other)))

    assert [o["format_source"] for o in outcomes[:3]] == [f"flow log {flow_log}"] * 3
    assert all(o["status"] == "recorded" for o in outcomes) and len(rows(world)) == 4
    groups = [p["Filter"][0]["Values"] for _, op, p in world.calls.calls if op == "DescribeFlowLogs"]
    assert groups == [[GROUP], [other]]  # once per log group


def test_no_flow_log_found_is_asked_again_after_five_minutes(world):
    """The fallback is kept briefly: a flow log created since is read within minutes."""
    web = world.web[0]
    running(world, web)
    clock = Clock()
    world.rt.flow_log_cache = FlowLogCache(clock=clock)
    world.calls.reset()
    # the documented format's fields in reverse order: as many fields as the fallback, so
    # the records do not fit it without telling by their count (which asks again at once)
    reverse = " ".join(reversed(flowlogs.DOCUMENTED_FORMAT.split()))
    message = " ".join(reversed(flow(web.eni, web.private_ip, "52.94.1.1", 443).split()))

    first = world.flow_logs(batch([message], stream="a"))
    flow_log = create_flow_log(world, reverse)
    clock.now += flowlog_lookup.UNSETTLED_TTL_SECONDS - 1
    cached = world.flow_logs(batch([message], stream="b"))
    clock.now += 1
    fresh = world.flow_logs(batch([message], stream="c"))
    clock.now += flowlog_lookup.UNSETTLED_TTL_SECONDS
    kept = world.flow_logs(batch([message], stream="d"))

    assert first["format_source"].startswith("documented format") and len(first["malformed"]) == 1
    assert cached["format_source"] == first["format_source"]
    assert fresh["format_source"] == kept["format_source"] == f"flow log {flow_log}"
    assert fresh["status"] == kept["status"] == "recorded"
    assert lookups(world) == 2  # the first batch and the one after five minutes


def test_records_that_do_not_fit_the_kept_format_ask_for_it_again_at_once(world):
    """AWS cannot change a flow log's format: it is deleted and created again. Records that
    do not fit the format kept for their group (not its count of fields) have it read
    again at once, not after the hour a settled answer is kept."""
    web = world.web[0]
    running(world, web)
    world.rt.flow_log_cache = FlowLogCache(clock=Clock())
    old = create_flow_log(world, flowlogs.DOCUMENTED_FORMAT)
    assert world.flow_logs(batch([flow(web.eni, web.private_ip, "52.94.1.1", 443)], stream="a"))[
        "status"
    ] == ("recorded")
    world.client("ec2").delete_flow_logs(FlowLogIds=[old])
    new = create_flow_log(world, REORDERED)
    world.calls.reset()

    outcome = world.flow_logs(batch([reordered(web.eni, web.private_ip, "52.94.7.7", 443, 900)], stream="b"))

    assert outcome["format_source"] == f"flow log {new}" and outcome["malformed"] == []
    assert ("52.94.7.7", "tcp", 443, "ACCEPT") in rows(world)
    assert lookups(world) == 1  # the kept answer, then one DescribeFlowLogs


def one_web_flow_and_the_ec2_client(world):
    """A batch of one internet flow of a recorded web task, and the runtime's EC2 client
    (to stub its flow-log lookups); the calls counted from here."""
    web = world.web[0]
    running(world, web)
    event = batch([flow(web.eni, web.private_ip, "52.94.1.1", 443)])
    ec2 = world.rt.clients.ec2(REGION)
    world.calls.reset()
    return event, ec2


@pytest.mark.parametrize(
    "code, status", [("UnauthorizedOperation", 403), ("RequestLimitExceeded", 503)]
)  # fmt: skip
def test_a_failed_describe_flow_logs_raises_naming_the_action_and_records_nothing(world, code, status):
    """Refused, or throttled past botocore's retries: the invocation fails (Lambda retries
    it, then the OnFailure destination keeps it); no format is guessed, nothing is
    written, nothing dead-lettered as malformed, and the failure is not cached."""
    event, ec2 = one_web_flow_and_the_ec2_client(world)

    with Stubber(ec2) as stub:
        stub.add_client_error("describe_flow_logs", code, "not this time", http_status_code=status)
        with pytest.raises(FlowLogLookupError) as raised:
            world.flow_logs(event)

    assert str(raised.value).startswith(f"ec2:DescribeFlowLogs (log-group-name {GROUP}): {code}")
    assert writes(world) == [] and rows(world) == {}
    assert world.spy.metrics["MalformedEvents"] == world.spy.metrics["DeadLetteredEvents"] == 0
    assert world.flow_logs(event)["status"] == "recorded"  # asked again, not cached


def test_the_vpcs_own_cidrs_are_not_internet_egress_even_in_public_space(world):
    """rules.md EGR-03: "not in the VPC's CIDRs". A VPC may use public address space (a
    secondary CIDR here); its addresses are private to it (ec2:DescribeVpcs, cached)."""
    ec2 = world.rt.clients.ec2(REGION)
    ec2.associate_vpc_cidr_block(VpcId=world.vpc, CidrBlock="44.0.0.0/16")
    web = world.web[0]
    running(world, web)
    outcome = world.flow_logs(
        batch(
            [
                flow(web.eni, web.private_ip, "44.0.3.9", 443),  # inside the VPC
                flow(web.eni, web.private_ip, "44.1.3.9", 443),  # outside: internet
            ]
        )
    )
    assert (outcome["private"], outcome["egress"]) == (1, 1)
    assert set(rows(world)) == {("44.1.3.9", "tcp", 443, "ACCEPT")}
    world.calls.reset()
    world.flow_logs(batch([flow(web.eni, web.private_ip, "44.0.3.10", 443)], 10))
    assert ("ec2", "DescribeVpcs") not in {(s, op) for s, op, _ in world.calls.calls}  # cached


def test_a_failed_describe_vpcs_raises_naming_the_action_and_records_nothing(world):
    event, ec2 = one_web_flow_and_the_ec2_client(world)
    with Stubber(ec2) as stub:
        stub.add_response("describe_flow_logs", {"FlowLogs": []})  # the parameter's format
        stub.add_client_error("describe_vpcs", "UnauthorizedOperation", "no", http_status_code=403)
        with pytest.raises(FlowLogLookupError) as raised:
            world.flow_logs(event)
    message = str(raised.value)
    assert message.startswith("ec2:DescribeVpcs (vpc-") and "UnauthorizedOperation" in message
    assert writes(world) == [] and rows(world) == {}
    assert world.flow_logs(event)["status"] == "recorded"  # asked again, not cached


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("where", ["flow log", "parameter"])
def test_a_format_without_the_needed_fields_rejects_the_batch_naming_them(world, monkeypatch, where):
    """The flow log's own LogFormat, or FLOW_LOG_FORMAT where no flow log is found: one
    error naming the missing fields and whose format it is, nothing of the batch written."""
    web = world.web[0]
    running(world, web)
    lacking = "${version} ${interface-id} ${srcaddr} ${dstaddr} ${action}"
    if where == "flow log":
        flow_log = create_flow_log(world, lacking)
        whose = f"the LogFormat of flow log {flow_log}"
    else:
        monkeypatch.setattr(world.rt, "flow_log_format", lacking)
        whose = "FLOW_LOG_FORMAT"
    world.calls.reset()

    outcome = world.flow_logs(batch([flow(web.eni, web.private_ip, "52.94.1.1", 443)]))

    assert outcome["status"] == "rejected" and outcome["dead_lettered"] is True
    assert outcome["error"] == f"{whose} lacks the needed fields: dstport, protocol, bytes, start"
    assert world.spy.metrics["MalformedEvents"] == 1
    assert writes(world) == [] and rows(world) == {}


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
    control = control_message()
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
    assert "to 1 internet address (1 address, protocol and port destination)" in finding["Description"]
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


def test_a_row_an_answer_named_stays_named_after_the_answer_expires_until_an_earlier_flow_comes(world):
    """Answers are kept 8 days and a row lives while traffic goes on: named from the
    answers alone, a destination a service kept calling turned FAILED once the answer that
    named its first flow expired. The name is kept on the row, for that first flow only."""
    web = world.web[0]
    running(world, web)
    started = datetime.now(UTC) - timedelta(minutes=5)
    dns_answer(world, web, "api.partner.example", "52.94.1.1", started - timedelta(minutes=3))
    first = world.flow_logs(batch([flow(web.eni, web.private_ip, "52.94.1.1", 443, at=started)]))
    assert first["results"][f"{WEB_KEY}/EGR-03"] == "PASSED"
    (row,) = DiscoveryStore(world.rt.recorder.table).flows(WEB_KEY)
    assert (row["named"], row["named_first_seen"]) == ("api.partner.example", row["first_seen"])

    ddb, table = world.rt.recorder.table.client, world.rt.recorder.table.name
    expired = [i for i in ddb.scan(TableName=table)["Items"] if i["pk"]["S"].startswith("ANSWER#")]
    for item in expired:  # what DynamoDB's TTL does after 8 days
        ddb.delete_item(TableName=table, Key={"pk": item["pk"], "sk": item["sk"]})
    assert expired
    later = world.flow_logs(
        batch([flow(web.eni, web.private_ip, "52.94.1.1", 443, at=started + timedelta(minutes=2))], 10)
    )
    assert later["results"][f"{WEB_KEY}/EGR-03"] == "PASSED"
    # a late batch with an earlier flow to it: the kept name does not cover that one
    earlier = world.flow_logs(
        batch([flow(web.eni, web.private_ip, "52.94.1.1", 443, at=started - timedelta(minutes=4))], 20)
    )
    assert earlier["results"][f"{WEB_KEY}/EGR-03"] == "FAILED"


def test_the_name_is_kept_with_publishing_off_too(monkeypatch):
    with emulated_world(monkeypatch, {"PUBLISH_FINDINGS": "false"}) as world:
        web = world.web[0]
        running(world, web)
        started = datetime.now(UTC) - timedelta(minutes=5)
        dns_answer(world, web, "api.partner.example", "52.94.1.1", started - timedelta(minutes=3))
        world.flow_logs(batch([flow(web.eni, web.private_ip, "52.94.1.1", 443, at=started)]))
        (row,) = DiscoveryStore(world.rt.recorder.table).flows(WEB_KEY)
        assert (row["named"], row["named_own"]) == ("api.partner.example", True)


def test_the_workloads_own_answer_delivered_later_replaces_another_workloads_kept_name(world):
    """Another workload's answer for a shared address (a CDN) named the row first; the
    workload's own, delivered later, comes first (as name_for has it), kept or not."""
    from test_dns_logs_handler import running as running_as_their_own

    web, etl = world.web[0], world.etl[0]
    running_as_their_own(world, web, etl)
    started = datetime.now(UTC) - timedelta(minutes=10)
    dns_answer(world, etl, "other-tenant.cdn.example", "52.94.1.1", started - timedelta(minutes=5))
    world.flow_logs(batch([flow(web.eni, web.private_ip, "52.94.1.1", 443, at=started)]))
    store = DiscoveryStore(world.rt.recorder.table)
    (row,) = store.flows(WEB_KEY)
    assert (row["named"], row["named_own"]) == ("other-tenant.cdn.example", False)

    dns_answer(world, web, "api.partner.example", "52.94.1.1", started - timedelta(minutes=2), first_id=50)
    (row,) = store.flows(WEB_KEY)
    assert (row["named"], row["named_own"]) == ("api.partner.example", True)
    name_of = dnslogs.flow_namer(store.answers, WEB_KEY, 24 * 3600)
    (shown,) = egress_view.flow_rows(store.flows(WEB_KEY), name_of=name_of)
    assert shown["name"] == "api.partner.example"


def test_an_answer_batch_retried_after_a_later_one_of_the_same_hour_still_names_the_flow(world):
    """The answer item of an (address, hour, name, source) kept the first-applied batch's
    first_seen and took a late batch's last_seen: batch 2 (answer at :40) then the retried
    batch 1 (answers at :05 and :10) left first_seen :40, last_seen :10, and a flow at :07
    was nobody's. The item now keeps the earliest answer and the latest, in any order."""
    from test_dns_logs_handler import batch as dns_batch
    from test_dns_logs_handler import record

    web = world.web[0]
    running(world, web)
    hour = (datetime.now(UTC) - timedelta(hours=1)).replace(minute=0, second=0, microsecond=0)
    dns_answer(world, web, "api.partner.example", "52.94.1.1", hour + timedelta(minutes=40), first_id=50)
    queries = []
    for minute in (5, 10):
        query = record(
            world.vpc,
            web.private_ip,
            "api.partner.example",
            (hour + timedelta(minutes=minute)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        )
        query["answers"] = [{"Rdata": "52.94.1.1", "Type": "A", "Class": "IN"}]
        queries.append(query)
    world.dns_logs(dns_batch(queries, 10))

    store = DiscoveryStore(world.rt.recorder.table)
    (item,) = store.answers(
        world.vpc,
        "52.94.1.1",
        hour.strftime("%Y-%m-%dT%H:%M:%SZ"),
        (hour + timedelta(minutes=59)).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    stamp = "%Y-%m-%dT%H:%M:%SZ"
    assert (item["first_seen"], item["last_seen"]) == (
        (hour + timedelta(minutes=5)).strftime(stamp),
        (hour + timedelta(minutes=40)).strftime(stamp),
    )
    outcome = world.flow_logs(
        batch([flow(web.eni, web.private_ip, "52.94.1.1", 443, at=hour + timedelta(minutes=7))])
    )
    assert outcome["results"][f"{WEB_KEY}/EGR-03"] == "PASSED"
    (row,) = store.flows(WEB_KEY)
    assert row["named"] == "api.partner.example"


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
    world.calls.reset()
    payload = dnslogs.decode_subscription(batch(["5 x"]))
    del payload["logGroup"]
    no_group = world.flow_logs(dnslogs.encode_subscription(payload))
    assert no_group["status"] == "rejected" and no_group["error"] == "logGroup: missing or not a string"
    assert lookups(world) == 0


def test_workloads_of_one_batch_share_the_dns_answer_reads_of_an_address(world):
    from test_dns_logs_handler import running as running_as_their_own  # etl in batch/family:etl

    web, etl = world.web[0], world.etl[0]
    running_as_their_own(world, web, etl)
    started = datetime.now(UTC)  # one moment for all three rows: one hour window
    world.calls.reset()
    outcome = world.flow_logs(
        batch(
            [
                flow(web.eni, web.private_ip, "52.94.1.1", 443, at=started),
                flow(web.eni, web.private_ip, "52.94.1.1", 8443, at=started),
                flow(etl.eni, etl.private_ip, "52.94.1.1", 443, at=started),
            ]
        )
    )
    assert len(outcome["workloads"]) == 2
    answer_reads = [
        params
        for service, op, params in world.calls.calls
        if (service, op) == ("dynamodb", "Query")
        and str(params.get("ExpressionAttributeValues", {}).get(":pk", {}).get("S", "")).startswith("ANSWER#")
    ]
    assert len(answer_reads) == 1  # one address, one hour window: three rows, two workloads
