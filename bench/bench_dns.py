"""Benchmark: one 10,000-record Resolver query-log batch through the dns_logs handler (a
script, not a test).

On moto in-process: the posture table from template.yaml, Security Hub enabled, 50
workloads of 2 running tasks each recorded by the recorder (so the IP index and the
workloads' running sets exist), then a CloudWatch Logs subscription batch of 10,000
records in the documented format: each workload resolving ~40 names (A and AAAA), 2% of
the queries from addresses no task held. Prints records/s of the handler and the DynamoDB
requests it made (write requests, item writes, reads), then the same for a redelivery of
the batch and for the pure part alone (decode, parse, aggregate, plan).

moto's TransactWriteItems deep-copies the whole table to be able to roll back (seconds per
transaction once the table holds thousands of items; DynamoDB takes tens of ms): the time
spent inside DynamoDB calls is printed apart, and records/s is given both with and
without it.

    .venv/bin/python bench/bench_dns.py [--records 10000] [--workloads 50] [--names 40]

Prints numbers only; nothing here asserts on time.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import random
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REGION, ACCOUNT, VPC = "eu-west-1", "123456789012", "vpc-0b0e0c0d0e0f01234"
TABLE = "fargate-audit-posture"
WRITES = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}


class Calls:
    def __init__(self) -> None:
        self.ops: Counter[str] = Counter()
        self.items = 0
        self.seconds = 0.0  # inside DynamoDB calls (the emulator's time)
        self._started = 0.0

    def before(self, **_):
        self._started = time.perf_counter()

    def after(self, **_):
        self.seconds += time.perf_counter() - self._started

    def hook(self, params=None, model=None, **_):
        if model.service_model.signing_name != "dynamodb":
            return
        self.ops[model.name] += 1
        if model.name == "TransactWriteItems":
            self.items += len(params["TransactItems"])
        elif model.name == "BatchWriteItem":
            self.items += sum(len(v) for v in params["RequestItems"].values())
        elif model.name in WRITES:
            self.items += 1

    def reset(self) -> None:
        self.ops.clear()
        self.items = 0
        self.seconds = 0.0

    def line(self) -> str:
        writes = sum(n for op, n in self.ops.items() if op in WRITES)
        reads = sum(n for op, n in self.ops.items() if op not in WRITES)
        detail = ", ".join(f"{op} {n}" for op, n in sorted(self.ops.items()))
        return f"{writes} write requests ({self.items} item writes), {reads} reads  [{detail}]"


def _records(workloads: list[tuple[str, list[str]]], count: int, names: int, now: datetime) -> list[dict]:
    rng = random.Random(7)
    vocab = [
        [f"svc{n}.{'amazonaws.com' if n % 3 else f'partner{w % 9}.example'}" for n in range(names)]
        for w in range(len(workloads))
    ]
    out = []
    for i in range(count):
        if rng.random() < 0.02:
            ip, name = f"10.99.{rng.randrange(4)}.{rng.randrange(250)}", "ntp.ubuntu.com"
        else:
            w = rng.randrange(len(workloads))
            ip, name = rng.choice(workloads[w][1]), rng.choice(vocab[w])
        qtype = "AAAA" if rng.random() < 0.3 else "A"
        at = (now - timedelta(seconds=rng.randrange(300))).strftime("%Y-%m-%dT%H:%M:%SZ")
        out.append(
            {
                "version": "1.100000",
                "account_id": ACCOUNT,
                "region": REGION,
                "vpc_id": VPC,
                "query_timestamp": at,
                "query_name": name + ".",
                "query_type": qtype,
                "query_class": "IN",
                "rcode": "NOERROR",
                "answers": [{"Rdata": f"203.0.113.{i % 250}", "Type": qtype, "Class": "IN"}],
                "srcaddr": ip,
                "srcport": str(30000 + i % 30000),
                "transport": "UDP",
                "srcids": {},
            }
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--workloads", type=int, default=50)
    parser.add_argument("--names", type=int, default=40)
    args = parser.parse_args()

    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            "TABLE_NAME": TABLE,
            "RULE_PARAMS": "{}",
            "PUBLISH_FINDINGS": "true",
            "POWERTOOLS_TRACE_DISABLED": "true",
        }
    )
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL"):
        os.environ.pop(name, None)

    import boto3
    from moto import mock_aws

    sys.path.insert(0, str(REPO / "layers"))
    from fargate_audit.app import dnslogs, lambda_handlers
    from fargate_audit.cli.template import load_template, table_create_kwargs
    from fargate_audit.core import engine

    base = json.loads((REPO / "tests" / "fixtures" / "base_posture.json").read_text())

    class Context:
        function_name = "bench-dns-logs"
        memory_limit_in_mb = 512
        invoked_function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:bench-dns-logs"
        aws_request_id = "00000000-0000-4000-8000-000000000000"

        def get_remaining_time_in_millis(self) -> int:
            return 120_000

    with mock_aws():
        session = boto3.session.Session(region_name=REGION)
        session.client("dynamodb", region_name=REGION).create_table(
            **table_create_kwargs(load_template(), TABLE)
        )
        session.client("securityhub", region_name=REGION).enable_security_hub()
        calls = Calls()
        rt_session = boto3.session.Session(region_name=REGION)
        rt_session.events.register("before-parameter-build", calls.hook)
        rt_session.events.register("before-call.dynamodb", calls.before)
        rt_session.events.register("after-call.dynamodb", calls.after)
        rt = lambda_handlers.build_runtime(session=rt_session)
        lambda_handlers.set_runtime(rt)

        now = datetime.now(UTC).replace(microsecond=0)
        cause = {"type": "sweep", "id": "bench", "task_version": None, "event_time": None}
        workloads = []
        for w in range(args.workloads):
            ips = []
            for t in range(2):
                posture = copy.deepcopy(base)
                ip = f"10.{w // 100}.{w % 100}.{10 + t}"
                posture.update(
                    task_arn=f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/bench/{w:016x}{t:016x}",
                    cluster_arn=f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/bench",
                    cluster_name="bench",
                    group=f"service:app{w}",
                    workload=f"bench/service:app{w}",
                    service_name=f"app{w}",
                    connectivity_at=(now - timedelta(hours=1)).isoformat(),
                )
                posture["network"].update(vpc_id=VPC, private_ip=ip)
                results = engine.evaluate(rt.catalog, [posture]).results
                rt.recorder.record_audit(posture, results, cause, now - timedelta(minutes=50))
                ips.append(ip)
            workloads.append((f"bench/service:app{w}", ips))

        records = _records(workloads, args.records, args.names, now)
        events = [
            {"id": str(37_000_000_000 + i), "timestamp": 0, "message": json.dumps(r, separators=(",", ":"))}
            for i, r in enumerate(records)
        ]
        payload = {
            "messageType": "DATA_MESSAGE",
            "owner": ACCOUNT,
            "logGroup": "/aws/route53resolver/bench",
            "logStream": f"{VPC}_bench",
            "subscriptionFilters": ["fargate-audit-dns-logs"],
            "logEvents": events,
        }
        event = dnslogs.encode_subscription(payload)
        print(
            f"batch: {len(records)} records, {args.workloads} workloads x 2 tasks, ~{args.names} names each, "
            f"{len(json.dumps(event)) / 1024:.0f} KiB encoded"
        )

        calls.reset()
        started = time.perf_counter()
        outcome = lambda_handlers.dns_logs(event, Context())
        elapsed = time.perf_counter() - started
        own = elapsed - calls.seconds
        print(
            f"first delivery: {elapsed:.2f} s ({calls.seconds:.2f} s inside DynamoDB calls); "
            f"{len(records) / elapsed:,.0f} records/s, {len(records) / own:,.0f} records/s without them; "
            f"{outcome['destinations']} destinations, {outcome['chunks']} chunks, "
            f"{outcome['attributed']} attributed / {outcome['unattributed']} unattributed, "
            f"{outcome['findings']['imported']} findings imported"
        )
        print(f"  DynamoDB: {calls.line()}")

        calls.reset()
        started = time.perf_counter()
        again = lambda_handlers.dns_logs(event, Context())
        elapsed = time.perf_counter() - started
        print(
            f"redelivery: {elapsed:.2f} s ({calls.seconds:.2f} s inside DynamoDB calls), status "
            f"{again['status']}, chunks skipped {again['chunks_skipped']} of {again['chunks']}"
        )
        print(f"  DynamoDB: {calls.line()}")
        lambda_handlers.reset_runtime()

    started = time.perf_counter()
    decoded = dnslogs.decode_subscription(event)
    parsed, _ = dnslogs.parse_records(decoded)
    aggregation = dnslogs.aggregate(parsed, {})
    dnslogs.plan_chunks(aggregation, now)
    pure = time.perf_counter() - started
    print(f"pure part (decode, parse, aggregate, plan): {pure:.3f} s, {len(records) / pure:,.0f} records/s")


if __name__ == "__main__":
    main()
