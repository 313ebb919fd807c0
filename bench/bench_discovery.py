"""Benchmark: egress discovery end to end (issue 12): a 10,000-record Resolver query-log
batch through the dns_logs function and a 10,000-record VPC flow-log batch through the
flow_logs function (a script, not a test).

On moto in-process, in the functional tests' emulated world (tests/support/world.py:
the posture table from template.yaml, Security Hub, a runtime whose session logs every
AWS call), ``--workloads`` x ``--tasks`` running tasks are recorded by the recorder
(``record_audit``: their IP and ENI index entries). Then:

1. **Both functions on one batch each.** The DNS batch (documented Resolver query-log
   records: A answers, one name in seven a CNAME chain ending at two A answers, 10% AAAA
   queries, 1% NXDOMAIN, 3% from addresses no task held) and the flow-log batch (the
   documented format, ``flowlogs.DOCUMENTED_FORMAT``: 80% to the addresses the DNS
   answers gave the task's workload, so ``discovered`` joins them; 5% direct to an IP no
   answer named; 3% REJECTed; 5% private or link-local; 5% ingress; 1% another ENI; 1%
   NODATA), each in a CloudWatch Logs subscription envelope. Per function: CPU
   (``time.process_time``) and wall of the handler, the CPU and wall spent inside AWS
   calls (the emulator answers in this process; the rest, the handler's own, still
   holds botocore's validation and serialisation of the requests and this script's log
   of them, a deep copy of each call's parameters), records/s of CPU, the pure part alone
   (decode, parse, aggregate under the batch's own attribution - read back from chunk 0's
   marker - and plan the chunks), the DynamoDB requests and item writes by kind; then
   the same batch redelivered (target: 0 item writes; it reads the batch's markers, and
   dns_logs reads again what EGR-01 is evaluated on, per workload).
2. **Items by kind** in the table after both (DNS destinations, ANSWER items, FLOW items,
   summaries, batch markers).
3. **Growth.** The same, each in a fresh world: 10,000 records of each kind with 10,
   100 and 1,000 distinct names (their addresses), then 100 names with 1,000, 10,000
   and 50,000 records: the items follow the destinations, not the records.
4. **discovered's reads.** ``fargate-audit discovered --workload W --format json`` on the
   table (the CLI in-process, its session's calls logged): its DynamoDB Queries for a
   workload with N flow rows (each flow row is named by one Query of ANSWER items).

moto's TransactWriteItems deep-copies the whole table once per action of a transaction
(to roll back on a cancellation): seconds per transaction once the table holds thousands
of items. This script makes it copy once per transaction (the copies were identical:
nothing changes in between), which changes no count; ``--moto-as-is`` keeps moto's.
Wall clocks still measure mostly the emulator; the pure part's CPU is the function's own.

    .venv/bin/python bench/bench_discovery.py [--quick] [--records 10000] [--names 200]
        [--workloads 10] [--tasks 5] [--growth-names 10,100,1000]
        [--growth-records 1000,10000,50000]

(or ``cd bench && PYTHONPATH=../layers ../.venv/bin/python bench_discovery.py``: the
script puts layers/ and tests/ on its path itself). ``--quick``: 2,000 records, 5 x 4
tasks, growth 10/100 names and 500/2,000 records. On this project's 2-core machine the
full run takes about 4 minutes (most of it moto's), ``--quick`` about 20 seconds.

Prints numbers only; nothing here asserts on time.
"""

from __future__ import annotations

import argparse
import copy
import io
import json
import random
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "layers"), str(REPO / "tests")]  # the library; support (tests' helpers)

import pytest  # noqa: E402 - MonkeyPatch: the emulated world sets its environment through one
from botocore.endpoint import Endpoint  # noqa: E402
from fargate_audit.app import dnslogs, flowlogs  # noqa: E402
from fargate_audit.app import service as app_service  # noqa: E402
from fargate_audit.cli import commands as cli  # noqa: E402
from fargate_audit.core import engine  # noqa: E402
from fargate_audit.edge import aws  # noqa: E402
from fargate_audit.stores.discovery import FLOW_BATCH_PREFIX, DiscoveryStore  # noqa: E402
from support.env import ACCOUNT, REGION, TABLE  # noqa: E402
from support.postures import task_posture  # noqa: E402
from support.sessions import new_session  # noqa: E402
from support.spies import CallLog  # noqa: E402
from support.world import World, emulated_world  # noqa: E402

WRITES = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}
KINDS = ("dns destination", "answer", "flow", "summary", "marker")  # the discovery items
OTHER = "other"  # the recorder's and the findings' items
DOMAINS = ("amazonaws.com", "example.com", "example.net", "example.org", "partner.example")
SHARED_NAMES = 3  # the first names are queried by every workload (10% of its queries)
NXDOMAIN_NAMES = 7  # names that do not resolve (1% of the queries)
DIRECT_ADDRESSES = 20  # addresses flows reach with no DNS answer naming them (2 ports each)
REJECTED_ADDRESSES = 16  # addresses of the REJECTed flows (2 ports each)


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


# --------------------------------------------------------------------------- the emulator


def copy_table_once_per_transaction() -> None:
    """moto's ``transact_write_items`` snapshots the table once per action (the same
    snapshot each time: nothing is written before the loop ends); once per call here."""
    from moto.dynamodb import models
    from moto.dynamodb.models.table import Table

    original = models.DynamoDBBackend.transact_write_items

    class _Once:
        def __init__(self) -> None:
            self.snapshots: dict[int, tuple[object, object]] = {}

        def deepcopy(self, obj, memo=None):
            if not isinstance(obj, Table):
                return copy.deepcopy(obj, memo)
            if id(obj) not in self.snapshots:
                self.snapshots[id(obj)] = (obj, copy.deepcopy(obj))  # obj kept: its id stays its own
            return self.snapshots[id(obj)][1]

    def transact_write_items(self, transact_items):
        models.copy = _Once()
        try:
            return original(self, transact_items)
        finally:
            models.copy = copy

    models.DynamoDBBackend.transact_write_items = transact_write_items


class Meter:
    """CPU and wall inside every AWS call of this process (botocore's
    ``Endpoint.make_request``: moto answers in there, response parsing included)."""

    def __init__(self) -> None:
        self.cpu = self.wall = 0.0
        meter, original = self, Endpoint.make_request

        def make_request(endpoint, operation_model, request_dict):
            cpu, wall = time.process_time(), time.perf_counter()
            try:
                return original(endpoint, operation_model, request_dict)
            finally:
                meter.cpu += time.process_time() - cpu
                meter.wall += time.perf_counter() - wall

        Endpoint.make_request = make_request

    def reset(self) -> None:
        self.cpu = self.wall = 0.0


# --------------------------------------------------------------------------- counting


def kind_of(pk: str, sk: str) -> str:
    if pk.startswith("DISC#"):
        if sk.startswith("DEST#"):
            return "dns destination"
        if sk.startswith("FLOW#"):
            return "flow"
        return "summary" if sk == "SUMMARY" else OTHER
    if pk.startswith("ANSWER#"):
        return "answer"
    if pk.startswith(("DNSBATCH#", "FLOWBATCH#")):
        return "marker"
    return OTHER


def _key_kind(attributes: dict) -> str:
    return kind_of(attributes["pk"]["S"], attributes["sk"]["S"])


@dataclass
class Tally:
    """The DynamoDB requests of a CallLog: per operation, and the item writes by kind."""

    ops: Counter = field(default_factory=Counter)
    items: Counter = field(default_factory=Counter)
    others: Counter = field(default_factory=Counter)  # the other services' requests

    @classmethod
    def of(cls, calls: list[tuple[str, str, dict]]) -> Tally:
        tally = cls()
        for service, op, params in calls:
            if service != "dynamodb":
                tally.others[f"{service}.{op}"] += 1
                continue
            tally.ops[op] += 1
            if op == "TransactWriteItems":
                for action in params["TransactItems"]:
                    ((verb, body),) = action.items()
                    if verb != "ConditionCheck":
                        tally.items[_key_kind(body["Item"] if verb == "Put" else body["Key"])] += 1
            elif op == "BatchWriteItem":
                for requests in params["RequestItems"].values():
                    for request in requests:
                        body = request.get("PutRequest", {}).get("Item") or request["DeleteRequest"]["Key"]
                        tally.items[_key_kind(body)] += 1
            elif op in WRITES:
                tally.items[_key_kind(params.get("Item") or params["Key"])] += 1
        return tally

    @property
    def write_requests(self) -> int:
        return sum(n for op, n in self.ops.items() if op in WRITES)

    @property
    def reads(self) -> int:
        return sum(n for op, n in self.ops.items() if op not in WRITES)

    @property
    def discovery_writes(self) -> int:
        return sum(n for kind, n in self.items.items() if kind != OTHER)

    def ops_text(self) -> str:
        return ", ".join(f"{op} {n}" for op, n in sorted(self.ops.items())) or "none"

    def others_text(self) -> str:
        return ", ".join(f"{op} {n}" for op, n in sorted(self.others.items())) or "none"

    def items_text(self) -> str:
        shown = [f"{kind} {self.items[kind]:,}" for kind in (*KINDS, OTHER) if self.items[kind]]
        return ", ".join(shown) or "none"


def table_items(world: World) -> Counter:
    """The table's items by kind (a Scan of keys, on the world's own session)."""
    found: Counter = Counter()
    pages = (
        world.client("dynamodb")
        .get_paginator("scan")
        .paginate(TableName=TABLE, ProjectionExpression="pk, sk")
    )
    for page in pages:
        found.update(_key_kind(item) for item in page["Items"])
    return found


# --------------------------------------------------------------------------- the estate


@dataclass(frozen=True)
class BenchTask:
    workload: int
    ip: str
    eni: str


def record_estate(world: World, workloads: int, tasks: int, anchor: datetime) -> list[BenchTask]:
    """``workloads`` services of ``tasks`` running tasks each, recorded by the recorder (as
    an audit would: LATEST, the workload's running set, the IP and ENI index) from an hour
    before ``anchor``."""
    rt, out = world.rt, []
    cause = {"type": "sweep", "id": "bench", "task_version": None, "event_time": None}
    for w in range(workloads):
        for t in range(tasks):
            task = BenchTask(w, f"10.20.{100 + w}.{10 + t}", f"eni-{w:08x}{t:09x}")
            posture = task_posture(
                f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/bench/{w:016x}{t:016x}",
                "bench",
                f"service:app{w}",
                stamp(anchor - timedelta(hours=1)),
                vpc_id=world.vpc,
                private_ip=task.ip,
                eni_id=task.eni,
                ipv6_addresses=[],
            )
            results = engine.evaluate(rt.catalog, [posture]).results
            rt.recorder.record_audit(posture, results, cause, anchor - timedelta(minutes=50))
            out.append(task)
    return out


# --------------------------------------------------------------------------- the batches


@dataclass(frozen=True)
class Site:
    name: str
    answers: tuple[dict, ...]  # the A query's answers (a CNAME chain for one name in seven)
    addresses: tuple[str, ...]  # the A answers' addresses (the name owns them)
    address6: str


def site(j: int) -> Site:
    name = f"api{j}.{DOMAINS[j % len(DOMAINS)]}"
    octets = f"{16 + j // 65536}.{j // 256 % 256}.{j % 256}"
    first = f"52.{octets}"

    def a(address: str) -> dict:
        return {"Rdata": address, "Type": "A", "Class": "IN"}

    if j % 7 != 3:  # not j % 5: with 10 workloads, workload 0 would own only chains
        answers, addresses = (a(first),), (first,)
    else:
        second = f"54.{octets}"
        chain = (
            {"Rdata": f"{name}.cdn.example.net.", "Type": "CNAME", "Class": "IN"},
            {"Rdata": f"e{j}.edge.example.net.", "Type": "CNAME", "Class": "IN"},
        )
        answers, addresses = (*chain, a(first), a(second)), (first, second)
    return Site(name, answers, addresses, f"2600:1f18:{j // 65536:x}:{j % 65536:x}::1")


class Names:
    """``count`` distinct names (sites) over the workloads: workload w's own are the names
    j with j % workloads == w; the first SHARED_NAMES are everyone's too."""

    def __init__(self, count: int, workloads: int) -> None:
        self.count = count
        self.sites = [site(j) for j in range(count)]
        self.own = [[j for j in range(count) if j % workloads == w] or [w % count] for w in range(workloads)]

    def pick(self, rng: random.Random, workload: int) -> Site:
        if rng.random() < 0.10:
            return self.sites[rng.randrange(min(SHARED_NAMES, self.count))]
        return self.sites[rng.choice(self.own[workload])]

    def bounds(self) -> Counter:
        """The most items of each kind the batches can make (every key drawn at least once):
        what the item counts tend to as records grow, whatever their number. Per workload
        (and the unattributed bucket, which queries any name): a DNS destination per name
        and query type (A, AAAA; the NXDOMAIN names A only); an ANSWER item per name and
        address (its A addresses and its AAAA one; one UTC hour); a FLOW item per address
        and port (the names' A addresses on 443 and 80, the direct and the rejected ones
        on 2 ports each)."""
        addresses = [len(s.addresses) for s in self.sites]
        shared = set(range(min(SHARED_NAMES, self.count)))
        found: Counter = Counter()
        for own in self.own:
            mine = set(own) | shared
            found["dns destination"] += 2 * len(mine) + NXDOMAIN_NAMES
            found["answer"] += sum(addresses[j] + 1 for j in mine)
            found["flow"] += 2 * (sum(addresses[j] for j in mine) + DIRECT_ADDRESSES + REJECTED_ADDRESSES)
        found["dns destination"] += 2 * self.count + NXDOMAIN_NAMES
        found["answer"] += sum(a + 1 for a in addresses)
        return found


def dns_records(tasks: list[BenchTask], count: int, names: Names, anchor: datetime, vpc: str) -> list[dict]:
    """Resolver query-log records (Route 53 developer guide, "Resolver query log example"),
    their times in the 10 minutes from ``anchor``."""
    rng = random.Random(7)
    out = []
    for _ in range(count):
        if rng.random() < 0.03:  # an address no task held
            source, chosen = f"10.20.250.{rng.randrange(200)}", names.sites[rng.randrange(names.count)]
        else:
            task = rng.choice(tasks)
            source, chosen = task.ip, names.pick(rng, task.workload)
        query_type, rcode, name, answers = "A", "NOERROR", chosen.name, list(chosen.answers)
        roll = rng.random()
        if roll < 0.10:
            query_type, answers = "AAAA", [{"Rdata": chosen.address6, "Type": "AAAA", "Class": "IN"}]
        elif roll < 0.11:
            rcode, name, answers = "NXDOMAIN", f"missing{rng.randrange(NXDOMAIN_NAMES)}.example.com", []
        out.append(
            {
                "version": "1.100000",
                "account_id": ACCOUNT,
                "region": REGION,
                "vpc_id": vpc,
                "query_timestamp": stamp(anchor + timedelta(seconds=rng.randrange(600))),
                "query_name": name + ".",
                "query_type": query_type,
                "query_class": "IN",
                "rcode": rcode,
                "answers": answers,
                "srcaddr": source,
                "srcport": str(rng.randrange(1024, 65536)),
                "transport": "UDP",
                "srcids": {},
            }
        )
    return out


def flow_messages(tasks: list[BenchTask], count: int, names: Names, anchor: datetime, vpc: str) -> list[str]:
    """Flow-log records in the documented format (flowlogs.DOCUMENTED_FORMAT), starting 10
    to 25 minutes after ``anchor`` (after the DNS answers that named their addresses)."""
    rng = random.Random(11)
    base = int(anchor.timestamp()) + 600
    out = []
    for _ in range(count):
        task = rng.choice(tasks)
        eni, source, port, action, direction = task.eni, task.ip, 443, "ACCEPT", "egress"
        start = base + rng.randrange(900)
        roll = rng.random()
        if roll < 0.80:  # to an address a DNS answer gave the workload
            target = rng.choice(names.pick(rng, task.workload).addresses)
            port = 443 if rng.random() < 0.9 else 80
        elif roll < 0.85:  # straight to an address no answer named
            target, port = f"198.51.100.{rng.randrange(DIRECT_ADDRESSES)}", rng.choice((443, 8443))
        elif roll < 0.88:
            target, port, action = (
                f"203.0.113.{rng.randrange(REJECTED_ADDRESSES)}",
                rng.choice((22, 4444)),
                "REJECT",
            )
        elif roll < 0.93:  # the VPC, or the instance metadata address
            target, port = rng.choice(
                ((f"10.20.{rng.randrange(4)}.{rng.randrange(250)}", 5432), ("169.254.169.254", 80))
            )
        elif roll < 0.98:
            source, target, direction = f"203.0.113.{100 + rng.randrange(50)}", task.ip, "ingress"
        elif roll < 0.99:  # an ENI no recorded task owned
            eni = f"eni-0ff{rng.randrange(10):014x}"
        else:
            out.append(f"5 {ACCOUNT} {eni} - - - - - - - {start} {start + 60} - NODATA {vpc} -")
            continue
        packets = rng.randrange(1, 200)
        out.append(
            f"5 {ACCOUNT} {eni} {source} {target} {rng.randrange(32768, 61000)} {port} 6 {packets} "
            f"{packets * rng.randrange(60, 1500)} {start} {start + 60} {action} OK {vpc} {direction}"
        )
    return out


def envelope(log_group: str, stream: str, messages: list[str], first_id: int) -> dict:
    """The CloudWatch Logs subscription event of ``messages``."""
    return dnslogs.encode_subscription(
        {
            "messageType": "DATA_MESSAGE",
            "owner": ACCOUNT,
            "logGroup": log_group,
            "logStream": stream,
            "subscriptionFilters": ["fargate-audit"],
            "logEvents": [
                {"id": str(first_id + i), "timestamp": 1_700_000_000_000 + i, "message": m}
                for i, m in enumerate(messages)
            ],
        }
    )


def batches(tasks, records: int, names: Names, anchor: datetime, vpc: str) -> tuple[dict, dict]:
    dns = [json.dumps(r, separators=(",", ":")) for r in dns_records(tasks, records, names, anchor, vpc)]
    flows = flow_messages(tasks, records, names, anchor, vpc)
    return (
        envelope("/aws/route53resolver/bench", f"{vpc}_bench", dns, 36_000_000_000),
        envelope("/vpc/flow-logs/bench", "eni-bench-all", flows, 37_000_000_000),
    )


# --------------------------------------------------------------------------- measuring


@dataclass
class Run:
    outcome: dict
    cpu: float
    wall: float
    aws_cpu: float
    aws_wall: float
    tally: Tally


def run_handler(world: World, meter: Meter, handler: Callable[[dict], dict], event: dict) -> Run:
    meter.reset()
    world.calls.reset()
    cpu, wall = time.process_time(), time.perf_counter()
    outcome = handler(event)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return Run(outcome, cpu, wall, meter.cpu, meter.wall, Tally.of(world.calls.calls))


def _best(steps: Callable[[], list[tuple[str, Callable[[], object]]]], repeat: int = 3) -> dict[str, float]:
    """CPU seconds of each step (the least of ``repeat`` runs)."""
    best: dict[str, float] = {}
    for _ in range(repeat):
        for label, step in steps():
            started = time.process_time()
            step()
            best[label] = min(best.get(label, float("inf")), time.process_time() - started)
    return best


def dns_pure(world: World, event: dict, batch: str, now: datetime) -> dict[str, float]:
    """decode, parse, aggregate (under the attribution chunk 0's marker keeps) and plan."""
    snapshot = dnslogs.decode_snapshot(
        DiscoveryStore(world.rt.recorder.table).markers(batch)[0]["attribution"]
    )

    def steps():
        state: dict = {}
        return [
            ("decode", lambda: state.update(payload=dnslogs.decode_subscription(event))),
            ("parse", lambda: state.update(records=dnslogs.parse_records(state["payload"])[0])),
            ("aggregate", lambda: state.update(agg=dnslogs.aggregate(state["records"], snapshot))),
            ("plan", lambda: dnslogs.plan_chunks(state["agg"], now)),
        ]

    return _best(steps)


def flow_pure(world: World, event: dict, batch: str, now: datetime) -> dict[str, float]:
    markers = DiscoveryStore(world.rt.recorder.table).markers(batch, FLOW_BATCH_PREFIX)
    snapshot = flowlogs.decode_snapshot(markers[0]["attribution"])
    # the format the handler read the batch by (the flow log's, else the parameter's)
    choice = app_service.flow_log_format(world.rt, dnslogs.decode_subscription(event)["logGroup"])
    fields = flowlogs.parse_format(choice.text, choice.what)

    def steps():
        state: dict = {}
        return [
            ("decode", lambda: state.update(payload=dnslogs.decode_subscription(event))),
            ("parse", lambda: state.update(records=flowlogs.parse_records(state["payload"], fields)[0])),
            (
                "aggregate",
                lambda: state.update(
                    agg=flowlogs.aggregate(state["records"], snapshot, world.rt.flow_private)
                ),
            ),
            ("plan", lambda: flowlogs.plan_chunks(state["agg"], now)),
        ]

    return _best(steps)


@dataclass
class DiscoveredCost:
    queries: int
    other_reads: int
    flow_rows: int
    named: int
    addresses: int
    sites: int
    wall: float


def discovered_reads(monkeypatch, workload: str) -> DiscoveredCost:
    """``fargate-audit discovered --workload <workload> --format json``, in-process, its
    session's calls logged."""
    log, session = CallLog(), new_session()
    log.attach(session)
    monkeypatch.setattr(aws, "session_from_env", lambda region=None: session)
    out, err = io.StringIO(), io.StringIO()
    started = time.perf_counter()
    code = cli.main(["discovered", "--table", TABLE, "--workload", workload, "--format", "json"], out, err)
    wall = time.perf_counter() - started
    if code != 0:
        raise SystemExit(f"discovered failed ({code}): {err.getvalue().strip()}")
    (block,) = json.loads(out.getvalue())
    tally = Tally.of(log.calls)
    return DiscoveredCost(
        queries=tally.ops["Query"],
        other_reads=tally.reads - tally.ops["Query"],
        flow_rows=len(block["flows"]),
        named=sum(1 for f in block["flows"] if f["name"]),
        addresses=len({f["address"] for f in block["flows"]}),
        sites=len(block["sites"]),
        wall=wall,
    )


# --------------------------------------------------------------------------- scenarios


def anchor_time(now: datetime) -> datetime:
    """Half past the previous hour: the DNS answers (10 minutes) and the flows (25) fall in
    one UTC hour, before now."""
    return (now - timedelta(hours=1)).replace(minute=30, second=0, microsecond=0)


@dataclass
class Scenario:
    records: int
    names: int
    dns: Run
    flow: Run
    dns_again: Run
    flow_again: Run
    items: Counter
    bounds: Counter
    dns_pure: dict[str, float] | None = None
    flow_pure: dict[str, float] | None = None
    discovered: DiscoveredCost | None = None
    encoded_kib: tuple[float, float] = (0.0, 0.0)


def scenario(args, meter: Meter, records: int, names: int, detail: bool = False) -> Scenario:
    with pytest.MonkeyPatch.context() as monkeypatch, emulated_world(monkeypatch) as world:
        now = datetime.now(UTC)
        anchor = anchor_time(now)
        tasks = record_estate(world, args.workloads, args.tasks, anchor)
        pool = Names(names, args.workloads)
        dns_event, flow_event = batches(tasks, records, pool, anchor, world.vpc)
        dns = run_handler(world, meter, world.dns_logs, dns_event)
        flow = run_handler(world, meter, world.flow_logs, flow_event)
        dns_again = run_handler(world, meter, world.dns_logs, dns_event)
        flow_again = run_handler(world, meter, world.flow_logs, flow_event)
        result = Scenario(records, names, dns, flow, dns_again, flow_again, table_items(world), pool.bounds())
        result.discovered = discovered_reads(monkeypatch, "bench/service:app0")
        if detail:
            result.dns_pure = dns_pure(world, dns_event, dns.outcome["batch_id"], now)
            result.flow_pure = flow_pure(world, flow_event, flow.outcome["batch_id"], now)
            result.encoded_kib = tuple(len(json.dumps(e)) / 1024 for e in (dns_event, flow_event))
        return result


# --------------------------------------------------------------------------- printing


def _rate(records: int, seconds: float) -> str:
    return f"{records / seconds:,.0f}" if seconds > 0 else "-"


def print_table(header: tuple[str, ...], rows: list[tuple], indent: str = "  ") -> None:
    cells = [tuple(str(c) for c in row) for row in [header, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    for n, row in enumerate(cells):
        print(
            indent
            + "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
        if n == 0:
            print(indent + "  ".join("-" * w for w in widths))


def print_main(s: Scenario, args) -> None:
    d, f = s.dns, s.flow
    print(
        f"estate: {args.workloads} workloads x {args.tasks} running tasks (recorded: IP and ENI index), "
        f"one VPC; {s.names} distinct names"
    )
    print(
        f"batches: DNS {s.records:,} records ({s.encoded_kib[0]:,.0f} KiB encoded), "
        f"flow logs {s.records:,} records ({s.encoded_kib[1]:,.0f} KiB encoded)"
    )
    print()
    print("1. Both functions, first delivery (CPU: time.process_time of this process; moto runs in it)")
    dp, fp = s.dns_pure or {}, s.flow_pure or {}
    dpure, fpure = sum(dp.values()), sum(fp.values())
    n = s.records
    rows = [
        ("handler CPU, s", f"{d.cpu:.2f}", f"{f.cpu:.2f}"),
        ("handler wall, s", f"{d.wall:.2f}", f"{f.wall:.2f}"),
        ("  of which inside AWS calls (moto): CPU, s", f"{d.aws_cpu:.2f}", f"{f.aws_cpu:.2f}"),
        ("  of which inside AWS calls (moto): wall, s", f"{d.aws_wall:.2f}", f"{f.aws_wall:.2f}"),
        ("handler's own CPU (outside AWS calls), s", f"{d.cpu - d.aws_cpu:.3f}", f"{f.cpu - f.aws_cpu:.3f}"),
        ("pure part CPU (decode+parse+aggregate+plan), s", f"{dpure:.3f}", f"{fpure:.3f}"),
        (
            "  decode / parse / aggregate / plan, ms",
            " / ".join(f"{dp.get(k, 0) * 1000:.0f}" for k in ("decode", "parse", "aggregate", "plan")),
            " / ".join(f"{fp.get(k, 0) * 1000:.0f}" for k in ("decode", "parse", "aggregate", "plan")),
        ),
        ("records/s of handler CPU (moto included)", _rate(n, d.cpu), _rate(n, f.cpu)),
        ("records/s of the handler's own CPU", _rate(n, d.cpu - d.aws_cpu), _rate(n, f.cpu - f.aws_cpu)),
        ("records/s of the pure part's CPU", _rate(n, dpure), _rate(n, fpure)),
        ("destinations aggregated", f"{d.outcome['destinations']:,}", f"{f.outcome['destinations']:,}"),
        ("ANSWER aggregates", f"{d.outcome['answers']:,}", "-"),
        ("chunks (transactions)", d.outcome["chunks"], f.outcome["chunks"]),
        ("DynamoDB write requests", d.tally.write_requests, f.tally.write_requests),
        (
            "  item writes: discovery (incl. markers)",
            f"{d.tally.discovery_writes:,}",
            f"{f.tally.discovery_writes:,}",
        ),
        ("  item writes: other (finding state)", d.tally.items[OTHER], f.tally.items[OTHER]),
        ("DynamoDB reads", d.tally.reads, f.tally.reads),
    ]
    print_table(("", "dns_logs", "flow_logs"), rows)
    print(
        f"  dns_logs: {d.outcome['attributed']:,} attributed / {d.outcome['unattributed']:,} unattributed, "
        f"{len(d.outcome['workloads'])} workloads, EGR-01 findings {d.outcome['findings']}"
    )
    fo = f.outcome
    print(
        f"  flow_logs: egress {fo['egress']:,} (rejected {fo['rejected']:,}), ingress {fo['ingress']:,}, "
        f"private {fo['private']:,}, other ENIs {fo['other_enis']:,}, NODATA {fo['no_data']:,}, "
        f"malformed {len(fo['malformed'])}"
    )
    for label, run in (("dns_logs", d), ("flow_logs", f)):
        print(f"  {label} DynamoDB: {run.tally.ops_text()}; other AWS: {run.tally.others_text()}")
        print(f"  {label} item writes: {run.tally.items_text()}")
    print()
    print("   redelivery of the same batch (target: 0 item writes)")
    rows = []
    for label, run in (("dns_logs", s.dns_again), ("flow_logs", s.flow_again)):
        o = run.outcome
        rows.append(
            (
                label,
                o["status"],
                f"{o['chunks_skipped']}/{o['chunks']}",
                run.tally.write_requests,
                run.tally.discovery_writes,
                run.tally.items[OTHER],
                run.tally.reads,
                run.tally.ops_text(),
                run.tally.others_text(),
                f"{run.cpu:.2f}",
            )
        )
    print_table(
        (
            "",
            "status",
            "skipped",
            "write requests",
            "discovery item writes",
            "other item writes",
            "reads",
            "DynamoDB requests",
            "other AWS requests",
            "CPU s",
        ),
        rows,
    )
    print()
    print("2. Items in the table after both (and both redeliveries)")
    rows = [(kind, f"{s.items[kind]:,}") for kind in (*KINDS, OTHER)]
    print_table(("kind", "items"), rows)


def growth_row(s: Scenario) -> tuple:
    discovery = sum(s.items[k] for k in KINDS)
    writes = s.dns.tally.discovery_writes + s.flow.tally.discovery_writes
    again = s.dns_again.tally.discovery_writes + s.flow_again.tally.discovery_writes
    return (
        f"{s.records:,}",
        f"{s.names:,}",
        f"{s.items['dns destination']:,} / {s.bounds['dns destination']:,}",
        f"{s.items['answer']:,} / {s.bounds['answer']:,}",
        f"{s.items['flow']:,} / {s.bounds['flow']:,}",
        s.items["summary"],
        s.items["marker"],
        f"{discovery:,}",
        f"{writes:,}",
        again,
        f"{s.dns.cpu + s.flow.cpu:.1f}",
    )


GROWTH_HEADER = (
    "records",
    "names",
    "DNS dest / max",
    "ANSWER / max",
    "FLOW / max",
    "summary",
    "markers",
    "discovery items",
    "item writes",
    "on redelivery",
    "CPU s",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller run (2,000 records, 5 x 4 tasks)")
    parser.add_argument("--records", type=int, help="records per batch (default 10,000)")
    parser.add_argument("--names", type=int, help="distinct names of the main run (default 200)")
    parser.add_argument("--workloads", type=int, help="default 10")
    parser.add_argument("--tasks", type=int, help="running tasks per workload (default 5)")
    parser.add_argument("--growth-names", help="names of the growth runs at --records (default 10,100,1000)")
    parser.add_argument(
        "--growth-records", help="records of the growth runs at 100 names (default 1000,10000,50000)"
    )
    parser.add_argument(
        "--moto-as-is", action="store_true", help="keep moto's table copy per transaction action"
    )
    args = parser.parse_args()
    quick = {
        "records": 2000,
        "names": 100,
        "workloads": 5,
        "tasks": 4,
        "growth_names": "10,100",
        "growth_records": "500,2000",
    }
    full = {
        "records": 10_000,
        "names": 200,
        "workloads": 10,
        "tasks": 5,
        "growth_names": "10,100,1000",
        "growth_records": "1000,10000,50000",
    }
    for key, value in (quick if args.quick else full).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    growth_names = [int(v) for v in args.growth_names.split(",")]
    growth_records = [int(v) for v in args.growth_records.split(",")]
    growth_fixed_names = 100

    if not args.moto_as_is:
        copy_table_once_per_transaction()
    meter = Meter()
    started = time.perf_counter()

    main_run = scenario(args, meter, args.records, args.names, detail=True)
    print_main(main_run, args)

    print()
    print("3. Growth (a fresh world each; both functions, then both redelivered)")
    print(f"   a) {args.records:,} records of each kind, distinct names growing")
    runs = {(main_run.records, main_run.names): main_run}
    for names in growth_names:
        if (args.records, names) not in runs:
            runs[(args.records, names)] = scenario(args, meter, args.records, names)
    print_table(GROWTH_HEADER, [growth_row(runs[(args.records, n)]) for n in growth_names])
    print(f"   b) {growth_fixed_names} names, records growing")
    rows = []
    for records in growth_records:
        run = runs.get((records, growth_fixed_names)) or scenario(args, meter, records, growth_fixed_names)
        runs[(records, growth_fixed_names)] = run
        rows.append(growth_row(run))
    print_table(GROWTH_HEADER, rows)
    print(
        "   max: the key space of the generated batches (every workload's names, addresses and ports\n"
        "   drawn at least once; Names.bounds): what the items tend to as records grow. Markers: one\n"
        "   per chunk of each batch (99 updates), kept 3 days."
    )

    print()
    print("4. `fargate-audit discovered --workload bench/service:app0 --format json`: its DynamoDB reads")
    rows = []
    for run in runs.values():
        c = run.discovered
        rows.append(
            (
                f"{run.records:,}",
                f"{run.names:,}",
                c.flow_rows,
                c.named,
                c.addresses,
                c.sites,
                c.queries,
                c.other_reads,
                f"{c.wall:.2f}",
            )
        )
    print_table(
        (
            "records",
            "names",
            "flow rows",
            "named",
            "addresses",
            "DNS rows",
            "Queries",
            "other reads",
            "wall s",
        ),
        rows,
    )
    print(
        "   (Queries = 1 summaries (GSI) + 1 DNS destinations + 1 flow rows"
        " + 1 ANSWER Query per address and hour window of the flow rows)"
    )
    print()
    print(f"total wall {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
