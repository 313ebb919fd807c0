"""Benchmark: the organization sweep through the planner and the workers (a script, not a test).

N accounts x R regions x T running Fargate tasks (one cluster ``prod-web``, one service
per account and region, the same names everywhere), on moto in-process: each member
account is reached through sts:AssumeRole into its own isolated state. The stack runs as
deployed with AUDITED_ACCOUNTS / AUDITED_REGIONS / MEMBER_EXTERNAL_ID: ``sweep_planner``
lists every (account, region, cluster)'s tasks and queues one message per page of at most
100 of them, then ONE warm worker container takes the queue in SQS batches of 10
(``sweep_worker``). The same sweep of one account and one region with none of those
variables set (the single-account stack) gives the baseline.

Printed: AWS requests per task (every request the functions make: ECS/EC2 reads, DynamoDB,
Security Hub, SQS, plus STS), the planner's and the workers' requests apart, AssumeRole
calls (total and the most for one account), the SQS messages the planner sent (pages:
``--tasks 250`` gives 3 per cluster) and the worker received, wall time (planner +
workers; the estate's set-up excluded) and the peak RSS of the process. Targets (issue
"Organization scale"): at most 1 AssumeRole per account per warm worker; requests per
task within 1.5x of the single-account figure.

    .venv/bin/python bench/bench_org_sweep.py [--accounts 20] [--regions 2] [--tasks 10]

Prints numbers only; nothing here asserts on time. On moto the wall time and RSS grow
faster than the work: moto's TransactWriteItems deep-copies the whole table on every
transaction (its rollback copy), so each task's record costs O(items of every account);
the request counts are the product's measure, the wall time is the emulator's. Hence 10
tasks per account and region by default: at the issue's 50, 20 accounts x 2 regions outgrow
this machine's memory inside moto (14 GB at 10 already), not inside the auditor.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # support: what the tests and the benchmarks share
sys.path.insert(0, str(REPO / "layers"))  # this checkout's library, whatever the venv installed
REGIONS = ("eu-west-1", "us-east-1", "eu-central-1", "us-west-2")
EXTERNAL_ID = "bench-org-7f3c"
FUNCTION = "fargate-audit-bench"


def _env(monkey: dict, accounts: list[str] | None, regions: list[str]) -> None:
    import os

    from support.env import ENV, UNSET

    for name in UNSET:
        os.environ.pop(name, None)
    os.environ.update(ENV | monkey)
    for name in ("AUDITED_ACCOUNTS", "AUDITED_REGIONS", "MEMBER_EXTERNAL_ID", "AWS_LAMBDA_FUNCTION_NAME"):
        os.environ.pop(name, None)
    if accounts is not None:
        os.environ.update(
            {
                "AUDITED_ACCOUNTS": ",".join(accounts),
                "AUDITED_REGIONS": ",".join(regions),
                "MEMBER_EXTERNAL_ID": EXTERNAL_ID,
                "AWS_LAMBDA_FUNCTION_NAME": FUNCTION,
            }
        )


def _member_session(central, account: str, region: str):
    import boto3

    if account == central.client("sts", region_name=region).get_caller_identity()["Account"]:
        return central
    credentials = central.client("sts", region_name=region).assume_role(
        RoleArn=f"arn:aws:iam::{account}:role/setup", RoleSessionName="setup"
    )["Credentials"]
    return boto3.session.Session(
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
        region_name=region,
    )


def _estate(session, region: str, tasks: int) -> None:
    from fargate_audit.local import estate
    from support.env import WORLD4

    session.client("securityhub", region_name=region).enable_security_hub()
    b = estate._Builder(session, region)
    vpc = b.vpc("prod", "10.20.0.0/16")
    igw = b.internet_gateway(vpc, "prod-igw")
    subnet = b.subnet("prod-web-a", vpc, "10.20.0.0/18", "a")
    b.route_table("prod-web", vpc, [subnet], [{"DestinationCidrBlock": WORLD4, "GatewayId": igw}])
    sg = b.security_group(
        "prod", "prod-web-tasks", "web", ingress=[estate._ports("tcp", 443, 443, cidrs4=[WORLD4])]
    )
    b.task_definition("web", [estate._container("web", "public.ecr.aws/nginx/nginx:1.27", ports=[443])])
    b.cluster("prod-web", "enabled")
    b.run_tasks("prod-web", "web", [subnet], [sg], tasks, "1.4.0", service="web")


def run(accounts: list[str] | None, regions: list[str], tasks: int) -> dict:
    """One sweep in a fresh emulator: ``accounts`` None is the single-account stack."""
    from fargate_audit.app import lambda_handlers
    from fargate_audit.local import estate
    from moto import mock_aws
    from support.env import ACCOUNT, REGION
    from support.sessions import new_session
    from support.spies import CallLog, LambdaContext, sqs_record
    from support.world import EVENTS, create_table

    with mock_aws():
        central = new_session()
        create_table(central)
        sqs = central.client("sqs", region_name=REGION)
        queue_url = sqs.create_queue(QueueName="sweep")["QueueUrl"]
        _env({"SWEEP_QUEUE_URL": queue_url, "MOTO_EC2_LOAD_DEFAULT_AMIS": "false"}, accounts, regions)
        scopes = [(a, r) for a in (accounts or [ACCOUNT]) for r in regions]
        for account, region in scopes:
            _estate(_member_session(central, account, region), region, tasks)

        # the planner and the worker are two functions: two containers, two runtimes
        calls = CallLog()
        runtimes = {}
        for function in ("planner", "worker"):
            rt_session = new_session()
            calls.attach(rt_session)  # the function's own session: STS AssumeRole is made there
            runtimes[function] = lambda_handlers.build_runtime(session=rt_session)
        context = LambdaContext()
        scheduled = json.loads((EVENTS / "scheduled-event.json").read_text(encoding="utf-8"))
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        started = time.perf_counter()
        lambda_handlers.set_runtime(runtimes["planner"])
        planned = lambda_handlers.sweep_planner(scheduled, context)
        planner_calls = len(calls.calls)
        planner_requests = sum(runtimes["planner"].clients.counter.counts.values())
        lambda_handlers.set_runtime(runtimes["worker"])
        messages = failures = 0
        while True:
            got = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages") or []
            if not got:
                break
            messages += len(got)
            for message in got:
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
            batch = {"Records": [sqs_record(m["MessageId"], m["Body"]) for m in got]}
            failures += len(lambda_handlers.sweep_worker(batch, context)["batchItemFailures"])
        wall = time.perf_counter() - started
        items = central.client("dynamodb", region_name=REGION).scan(
            TableName="fargate-audit-posture", Select="COUNT"
        )
        audited = len(scopes) * tasks

        def assumed(phase_calls) -> Counter:
            return Counter(
                params["RoleArn"].split(":")[4]
                for service, op, params in phase_calls
                if (service, op) == ("sts", "AssumeRole")
            )

        planner_assume, worker_assume = (
            assumed(calls.calls[:planner_calls]),
            assumed(calls.calls[planner_calls:]),
        )
        assume_total = sum(planner_assume.values()) + sum(worker_assume.values())
        by_service: Counter[str] = Counter()
        for rt in runtimes.values():
            for key, count in rt.clients.counter.counts.items():
                by_service[key.split(".")[0]] += count
        by_service["sts"] += assume_total
        requests = sum(by_service.values())
        estate.release_task_states(central.client("ecs", region_name=REGION))
        lambda_handlers.reset_runtime()
        return {
            "accounts": len(accounts or [ACCOUNT]),
            "regions": len(regions),
            "tasks": audited,
            "requests": requests,
            "requests_per_task": round(requests / audited, 2),
            "by_service": dict(sorted(by_service.items())),
            "assume_role_calls": assume_total,
            "assume_role_planner": sum(planner_assume.values()),
            "assume_role_worker": sum(worker_assume.values()),
            "assume_role_max_per_account_in_worker": max(worker_assume.values(), default=0),
            "planner_requests": planner_requests,
            "worker_requests": sum(runtimes["worker"].clients.counter.counts.values()),
            "sqs_messages_sent": planned["messages"],
            "sqs_messages_received": messages,
            "planned": {k: planned[k] for k in ("clusters", "tasks", "retiring", "messages") if k in planned},
            "worker_failures": failures,
            "table_items": items["Count"],
            "wall_seconds": round(wall, 1),
            "peak_rss_mb_after_setup": round(rss_before),
            "peak_rss_mb_after_sweep": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--accounts", type=int, default=20)
    parser.add_argument("--regions", type=int, default=2)
    parser.add_argument("--tasks", type=int, default=10, help="running tasks per account and region")
    args = parser.parse_args()
    regions = list(REGIONS[: args.regions])
    single = run(None, regions[:1], args.tasks)
    print("single account:", json.dumps(single))
    accounts = [f"{100000000000 + n:012d}" for n in range(1, args.accounts + 1)]
    org = run(accounts, regions, args.tasks)
    print("organization:  ", json.dumps(org))
    ratio = org["requests_per_task"] / single["requests_per_task"]
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"requests per task: {org['requests_per_task']} vs {single['requests_per_task']} single "
        f"({ratio:.2f}x; target <= 1.5x)"
    )
    print(
        f"AssumeRole: {org['assume_role_calls']} calls for {org['accounts']} accounts "
        f"(planner {org['assume_role_planner']}, worker {org['assume_role_worker']}), at most "
        f"{org['assume_role_max_per_account_in_worker']} per account in the warm worker (target <= 1)"
    )
    for name, result in (("single account", single), ("organization", org)):
        clusters = result["planned"]["clusters"]
        print(
            f"SQS messages sent by the planner ({name}): {result['sqs_messages_sent']} pages of at most "
            f"100 tasks for {clusters} clusters and {result['planned']['tasks']} tasks "
            f"({result['sqs_messages_sent'] / max(clusters, 1):.1f} per cluster), "
            f"{result['sqs_messages_received']} received by the worker; requests (STS aside): planner "
            f"{result['planner_requests']}, worker {result['worker_requests']}"
        )
    print(f"wall: {org['wall_seconds']} s; peak RSS: {peak_mb:.0f} MB")


if __name__ == "__main__":
    main()
