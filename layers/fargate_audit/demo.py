"""`fargate-audit demo`: the whole pipeline on an emulated AWS estate, in-process.

moto emulates AWS inside this process (``moto.mock_aws``): no account, no credentials and
no network are used. The estate (estate.build_demo_estate) is built, then audited by the
same scan and rendered by the same table as ``fargate-audit scan``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TextIO

DEMO_REGION = "eu-west-1"
DEMO_SEED = 20240501  # moto's ids are random: a fixed seed makes the demo repeatable

# Every variable through which boto3 could find a real account, profile or endpoint.
_AWS_VARIABLES_REMOVED = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_ENDPOINT_URL",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
)
_AWS_VARIABLES_SET = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": DEMO_REGION,
    "AWS_REGION": DEMO_REGION,
    "AWS_CONFIG_FILE": os.devnull,  # a profile there could name an endpoint_url
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "true",
}


@dataclass
class DemoRun:
    estate: object  # estate.EstateInfo
    outcome: object  # scan.ScanOutcome
    build_s: float
    scan_s: float


@contextmanager
def demo_environment() -> Iterator[None]:
    """Fake credentials and no endpoint, profile or config file, for the duration only."""
    saved = dict(os.environ)
    try:
        for name in list(os.environ):
            if name in _AWS_VARIABLES_REMOVED or name.startswith("AWS_ENDPOINT_URL_"):
                del os.environ[name]
        os.environ.update(_AWS_VARIABLES_SET)
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def build_and_scan(region: str = DEMO_REGION) -> DemoRun:
    """Build the demo estate in an in-process emulator and scan it with the real pipeline."""
    import boto3
    from moto import mock_aws
    from moto.moto_api._internal import mock_random

    from . import estate, scan

    with demo_environment(), mock_aws():
        mock_random.seed(DEMO_SEED)
        session = boto3.session.Session(region_name=region)
        started = time.perf_counter()
        info = estate.build_demo_estate(session, region)
        built = time.perf_counter()
        try:
            outcome = scan.run_scan(session, regions=[region])
        finally:
            estate.release_task_states(session.client("ecs", region_name=region))
        scanned = time.perf_counter()
    return DemoRun(estate=info, outcome=outcome, build_s=built - started, scan_s=scanned - built)


def _header(run: DemoRun) -> str:
    lines = ["fargate-audit demo: an emulated AWS estate (moto, in-process; no account, no network)", ""]
    lines += [f"  - {line}" for line in run.estate.narrative]
    lines += [
        "",
        f"Built in {run.build_s:.1f} s; scanning it with the same pipeline as `fargate-audit scan`.",
        "",
    ]
    return "\n".join(lines) + "\n"


def _footer(run: DemoRun) -> str:
    report = run.outcome.report
    workload_of = {t["task_arn"]: t.get("workload") or t["group"] for t in report["tasks"]}
    statuses: dict[str, set[str]] = {}
    reachable: dict[str, set[str]] = {}
    secrets: set[str] = set()
    errors = 0
    for result in report["results"]:
        statuses.setdefault(result["rule_id"], set()).add(result["status"])
        errors += result["status"] == "ERROR"
        if result["status"] != "FAILED":
            continue
        workload = workload_of.get(result["task_arn"], result["task_arn"])
        if result["rule_id"] == "NET-02":
            ports = result["evidence"].get("open_ports") or []
            reachable.setdefault(workload, set()).update(
                f"{p['protocol']}/{p['from']}" + (f"-{p['to']}" if p["to"] != p["from"] else "")
                for p in ports
            )
        elif result["rule_id"] == "CFG-02":
            secrets.add(workload)
    failing = sorted(rule for rule, seen in statuses.items() if "FAILED" in seen)
    api_calls = sum(report["stats"]["api_calls"].values())
    lines = ["What to look at:"]
    if reachable:
        lines.append("  - reachable from the internet (public IP + internet gateway + open SG and NACL):")
        lines += [f"      {w}  ports {', '.join(sorted(p))}" for w, p in sorted(reachable.items())]
    lines.append(
        f"  - {len(failing)} of {len(statuses)} rules fail on at least one task: {', '.join(failing)}"
    )
    if secrets:
        names = ", ".join(sorted(secrets))
        lines.append(f"  - plain-text secrets (variable names only; values are never shown): {names}")
    lines.append(
        f"  - {errors} results in ERROR; {report['summary']['skipped_tasks']} tasks skipped (not Fargate or "
        "not RUNNING)"
    )
    lines.append(
        f"  - the scan made {api_calls} AWS requests for {report['summary']['tasks']} tasks "
        f"in {run.scan_s:.1f} s"
    )
    lines.append("Run `fargate-audit scan` with your own credentials to audit a real account (read-only).")
    return "\n".join(lines) + "\n"


def render_demo(run: DemoRun, out: TextIO, err: TextIO, fmt: str = "table") -> None:
    """Write a demo run as a user sees it: ``table`` (narrative, the scan table, what to
    look at) or ``json`` (the scan report only on ``out``; the narrative on ``err``)."""
    from . import table

    if fmt == "json":
        err.write(_header(run))
        out.write(json.dumps(run.outcome.report, indent=2, sort_keys=True) + "\n")
        return
    out.write(_header(run))
    out.write(table.render(run.outcome.report, color=table.use_color(out, os.environ)))
    out.write("\n" + _footer(run))


def run_demo(out: TextIO = sys.stdout, err: TextIO = sys.stderr, fmt: str = "table") -> int:
    """Build the demo estate, scan it and print what a user would see, then tell the
    event-driven story (on ``err`` with ``json``: ``out`` is the report only); returns 0."""
    if fmt not in ("table", "json"):
        raise ValueError(f"unknown demo format {fmt!r} (table or json)")
    render_demo(build_and_scan(), out, err, fmt)
    run_event_story(err if fmt == "json" else out)
    return 0


# --------------------------------------------------------------------------- the event path
#
# The same emulator, driven through the Lambda handlers (fargate_audit.lambda_handlers) the
# way EventBridge would: a task starts, a security group is opened, the task stops. Events
# are built in the shapes AWS documents (events/*.json): an ECS "Task State Change" whose
# detail is the task as DescribeTasks gives it but with an "eni" attachment and ISO times,
# and a Config "Configuration Item Change" in Config's camelCase.

STORY_CLUSTER, STORY_SERVICE = "shop", "checkout"
_STORY_ENVIRONMENT = {
    "RULE_PARAMS": "{}",
    "PUBLISH_FINDINGS": "true",
    "VPC_CACHE_TTL_SECONDS": "300",
    "POWERTOOLS_SERVICE_NAME": "fargate-audit",
    "POWERTOOLS_METRICS_NAMESPACE": "FargateAudit",
    "POWERTOOLS_TRACE_DISABLED": "true",
}


def _envelope(detail_type: str, source: str, account: str, region: str, resource: str, detail: dict) -> dict:
    """The EventBridge envelope; the id is derived from what the event is about."""
    import uuid
    from datetime import UTC, datetime

    name = f"{detail_type}/{resource}/{detail.get('version', detail.get('notificationCreationTime'))}"
    return {
        "version": "0",
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, name)),
        "detail-type": detail_type,
        "source": source,
        "account": account,
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [resource],
        "detail": detail,
    }


def task_state_change(task: dict, account: str, region: str, status: str, version: int) -> dict:
    """An ECS "Task State Change" event for a DescribeTasks item (event shapes: attachment
    type "eni", ISO timestamps, ``version``)."""
    from datetime import UTC, datetime

    from .collect import jsonable

    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    detail = jsonable(task)
    for attachment in detail.get("attachments", []):
        if attachment.get("type") == "ElasticNetworkInterface":
            attachment["type"] = "eni"
            attachment["status"] = "ATTACHED" if status == "RUNNING" else "DELETED"
    detail |= {"lastStatus": status, "desiredStatus": status, "version": version, "updatedAt": now}
    if status == "STOPPED":
        detail |= {"stopCode": "UserInitiated", "stoppedReason": "Task stopped by user", "stoppedAt": now}
    return _envelope("ECS Task State Change", "aws.ecs", account, region, task["taskArn"], detail)


def security_group_change(group: dict, account: str, region: str) -> dict:
    """An AWS Config "Configuration Item Change" for a security group (Config's camelCase)."""
    from datetime import UTC, datetime

    def permission(p: dict) -> dict:
        item = {
            "ipProtocol": p.get("IpProtocol"),
            "ipv4Ranges": [{"cidrIp": r["CidrIp"]} for r in p.get("IpRanges", [])],
        }
        if "FromPort" in p:
            item |= {"fromPort": p["FromPort"], "toPort": p["ToPort"]}
        return item

    captured = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    arn = f"arn:aws:ec2:{region}:{account}:security-group/{group['GroupId']}"
    item = {
        "configurationItemVersion": "1.3",
        "configurationItemCaptureTime": captured,
        "configurationItemStatus": "OK",
        "awsAccountId": account,
        "awsRegion": region,
        "resourceType": "AWS::EC2::SecurityGroup",
        "resourceId": group["GroupId"],
        "resourceName": group["GroupName"],
        "ARN": arn,
        "relationships": [
            {"resourceId": group["VpcId"], "resourceType": "AWS::EC2::VPC", "name": "Is contained in Vpc"}
        ],
        "configuration": {
            "groupId": group["GroupId"],
            "groupName": group["GroupName"],
            "vpcId": group["VpcId"],
            "ipPermissions": [permission(p) for p in group.get("IpPermissions", [])],
        },
    }
    detail = {
        "recordVersion": "1.3",
        "messageType": "ConfigurationItemChangeNotification",
        "configurationItemDiff": {"changedProperties": {}, "changeType": "UPDATE"},
        "notificationCreationTime": captured,
        "configurationItem": item,
    }
    return _envelope("Config Configuration Item Change", "aws.config", account, region, arn, detail)


def run_event_story(out: TextIO, region: str = DEMO_REGION) -> None:
    """A task starts, its security group is opened, it stops: each step sent through the
    Lambda handlers on an in-process emulator, told as a short narrative on ``out``."""
    try:
        from .template import load_template

        template = load_template()
    except FileNotFoundError:
        out.write("\n(The event-driven part of the demo needs template.yaml: run it from the repository.)\n")
        return
    with demo_environment():
        os.environ.update(_STORY_ENVIRONMENT)
        _event_story(out, region, template)


def _event_story(out: TextIO, region: str, template: dict) -> None:
    import boto3
    from moto import mock_aws
    from moto.moto_api._internal import mock_random

    from . import estate, lambda_handlers, local
    from .template import DEFAULT_TABLE_NAME, table_create_kwargs, table_ttl_attribute

    with mock_aws():
        mock_random.seed(DEMO_SEED)
        os.environ["TABLE_NAME"] = DEFAULT_TABLE_NAME
        session = boto3.session.Session(region_name=region)
        dynamodb = session.client("dynamodb", region_name=region)
        dynamodb.create_table(**table_create_kwargs(template, DEFAULT_TABLE_NAME))
        dynamodb.update_time_to_live(
            TableName=DEFAULT_TABLE_NAME,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": table_ttl_attribute(template)},
        )
        securityhub = session.client("securityhub", region_name=region)
        securityhub.enable_security_hub(EnableDefaultStandards=False)
        b = estate._Builder(session, region)
        lambda_handlers.reset_runtime()
        try:
            _tell_event_story(out, b, securityhub, lambda_handlers, local)
        finally:
            lambda_handlers.reset_runtime()
            estate.release_task_states(b.ecs)


def _tell_event_story(out: TextIO, b, securityhub, lambda_handlers, local) -> None:
    from . import estate

    account, region = b.info.account_id, b.region
    vpc = b.vpc("shop", "10.42.0.0/16")
    igw = b.internet_gateway(vpc, "shop-igw")
    subnet = b.subnet("shop-public-a", vpc, "10.42.0.0/24", "a")
    b.route_table("shop-public", vpc, [subnet], [{"DestinationCidrBlock": estate.WORLD4, "GatewayId": igw}])
    sg = b.security_group(
        "shop",
        "checkout-web",
        "checkout tasks",
        ingress=[estate._ports("tcp", 443, 443, cidrs4=[estate.WORLD4])],
    )
    b.cluster(STORY_CLUSTER, "enabled")
    ecr = f"{account}.dkr.ecr.{region}.amazonaws.com"
    b.task_definition(STORY_SERVICE, [estate._container("web", f"{ecr}/checkout:4.1", ports=[443])])
    [task_arn] = b.run_tasks(
        STORY_CLUSTER, STORY_SERVICE, [subnet], [sg], 1, "1.4.0", service=STORY_SERVICE, public_ip=True
    )
    (task,) = b.ecs.describe_tasks(cluster=STORY_CLUSTER, tasks=[task_arn])["tasks"]
    workload = f"{STORY_CLUSTER}/service:{STORY_SERVICE}"
    finding_id = f"fargate-audit/{account}/{region}/{workload}/NET-03"
    short = task_arn.rsplit("/", 1)[-1][:8]
    context = local.LambdaContext("fargate-audit-demo", 512, 60, region)

    def net03() -> dict:
        found = {}
        for page in securityhub.get_paginator("get_findings").paginate():
            found.update({f["Id"]: f for f in page["Findings"]})
        return found.get(finding_id, {})

    lines = [
        "",
        "The event-driven path: the same pipeline inside the Lambda handlers (events sent by hand):",
    ]
    started = lambda_handlers.task_events(task_state_change(task, account, region, "RUNNING", 2), context)
    reads = sum(started.get("api_calls", {}).values())
    before = net03()
    lines += [
        f"  1. ECS reports task {short} of {workload} RUNNING: audited from the event itself",
        f"     ({reads} AWS reads), recorded, {started['findings']['imported']} findings imported into "
        f"Security Hub (NET-03 {before['Compliance']['Status']}, UpdatedAt {before['UpdatedAt']}).",
    ]

    b.ec2.authorize_security_group_ingress(
        GroupId=sg, IpPermissions=[estate._ports("tcp", 22, 22, cidrs4=[estate.WORLD4])]
    )
    (group,) = b.ec2.describe_security_groups(GroupIds=[sg])["SecurityGroups"]
    changed = lambda_handlers.config_events(security_group_change(group, account, region), context)
    after = net03()
    history = lambda_handlers.runtime().recorder.history(task_arn)
    lines += [
        f"  2. Someone opens SSH (tcp/22) to 0.0.0.0/0 on {sg}; AWS Config reports the change and the",
        f"     {changed['tasks']} task depending on it is re-audited with fresh VPC facts.",
        "     `fargate-audit history` of the task:",
    ]
    lines += ["       " + line for line in local.format_history(task_arn, history).rstrip("\n").splitlines()]
    lines.append(
        f"     Security Hub finding NET-03: {before['Compliance']['Status']} -> "
        f"{after['Compliance']['Status']}, UpdatedAt {before['UpdatedAt']} -> {after['UpdatedAt']}."
    )

    stopped = lambda_handlers.task_events(task_state_change(task, account, region, "STOPPED", 3), context)
    lines += [
        f"  3. ECS reports the task STOPPED: no task of {workload} runs any more, so its "
        f"{stopped['findings']['archived']} findings are archived (NET-03 now {net03().get('RecordState')}).",
    ]
    out.write("\n".join(lines) + "\n")
