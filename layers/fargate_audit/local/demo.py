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

    from fargate_audit.app import scan
    from fargate_audit.local import estate

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
    from fargate_audit.cli import table

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
    doors: dict[str, dict[str, None]] = {}
    for task in report["tasks"]:
        for exposure in task.get("exposures") or []:
            doors.setdefault(workload_of[task["task_arn"]], {})[table.front_door(exposure)] = None
    if doors:
        lines.append("  - reachable from the internet through load balancers (listener -> task port):")
        lines += [f"      {w}  {', '.join(d)}" for w, d in sorted(doors.items())]
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
    from fargate_audit.cli import table

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
    run_dns_story(err if fmt == "json" else out)
    return 0


# --------------------------------------------------------------------------- the event path
#
# The same emulator, driven through the Lambda handlers (fargate_audit.app.lambda_handlers) the
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

    from fargate_audit.edge.collect import jsonable

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

    def tell(session, estate, lambda_handlers, local) -> None:
        b = estate._Builder(session, region)
        securityhub = session.client("securityhub", region_name=region)
        lambda_handlers.reset_runtime()
        _tell_event_story(out, b, securityhub, lambda_handlers, local)

    _run_story(out, region, "event-driven part", tell)


def _run_story(out: TextIO, region: str, part: str, tell) -> None:
    """The emulator a story runs on: the demo environment with the functions' settings, the
    template's table (no queue), a fresh Lambda runtime before and after ``tell(session,
    estate, lambda_handlers, local)``, the emulated task states released at the end."""
    try:
        from fargate_audit.cli.template import load_template

        template = load_template()
    except FileNotFoundError:
        out.write(f"\n(The {part} of the demo needs template.yaml: run it from the repository.)\n")
        return
    import boto3
    from moto import mock_aws
    from moto.moto_api._internal import mock_random

    from fargate_audit.app import lambda_handlers
    from fargate_audit.cli.template import DEFAULT_TABLE_NAME
    from fargate_audit.local import estate
    from fargate_audit.local import invoke as local

    with demo_environment():
        os.environ.update(_STORY_ENVIRONMENT)
        with mock_aws():
            mock_random.seed(DEMO_SEED)
            os.environ["TABLE_NAME"] = DEFAULT_TABLE_NAME
            session = boto3.session.Session(region_name=region)
            local.ensure_local_resources(session, template, DEFAULT_TABLE_NAME, with_queue=False)
            try:
                tell(session, estate, lambda_handlers, local)
            finally:
                lambda_handlers.reset_runtime()
                estate.release_task_states(session.client("ecs", region_name=region))


def _tell_event_story(out: TextIO, b, securityhub, lambda_handlers, local) -> None:
    from fargate_audit.cli import views
    from fargate_audit.local import estate

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
    context = local.LambdaContext("fargate-audit-demo", 512, 60, region, account=account)

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
    shown = views.format_history(task_arn, history).rstrip("\n").splitlines()
    lines += ["       " + line for line in shown]
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


# --------------------------------------------------------------------------- egress discovery
#
# The demo estate's prod VPC logs its DNS queries (Route 53 Resolver query logging). Records
# in the documented format (event-shapes.md) for three of its workloads are delivered to the
# dns_logs handler as a CloudWatch Logs subscription batch: what each workload resolved is
# recorded, EGR-01 is evaluated per workload, and the observed names become allow lists.

DNS_STORY_WORKLOADS = {  # workload -> (names resolved while pulling, names resolved running)
    "prod-web/service:edge-proxy": (  # nginx from Docker Hub
        ["registry-1.docker.io", "auth.docker.io", "production.cloudflare.docker.com"],
        [],
    ),
    "batch/family:report-worker": (  # from ghcr.io, and it reports to a vendor nobody approved
        ["ghcr.io", "pkg-containers.githubusercontent.com"],
        ["telemetry.insights-vendor.example", "s3.eu-west-1.amazonaws.com"],
    ),
    "prod-web/service:checkout-api": (  # private ECR; only AWS endpoints
        [
            "api.ecr.{region}.amazonaws.com",
            "{account}.dkr.ecr.{region}.amazonaws.com",
            "prod-{region}-starport-layer-bucket.s3.{region}.amazonaws.com",
        ],
        [
            "dynamodb.{region}.amazonaws.com",
            "secretsmanager.{region}.amazonaws.com",
            "checkout.cluster-abc.{region}.rds.amazonaws.com",
            "logs.{region}.amazonaws.com",
        ],
    ),
}


def _digest(name: str) -> int:
    return sum(name.encode()) % 250 + 1


def answer_rdata(name: str, query_type: str = "A") -> str:
    """The address the demo's Resolver answers for ``name`` (documentation ranges)."""
    digest = _digest(name)
    return f"203.0.113.{digest}" if query_type == "A" else f"2001:db8::{digest:x}"


def resolver_record(
    account: str, region: str, vpc_id: str, srcaddr: str, name: str, at: str, query_type: str = "A"
) -> dict:
    """One Route 53 Resolver query-log record, as Resolver writes it (a fully qualified
    name with its trailing dot; answers from the documentation address ranges)."""
    digest = _digest(name)
    return {
        "version": "1.100000",
        "account_id": account,
        "region": region,
        "vpc_id": vpc_id,
        "query_timestamp": at,
        "query_name": name + ".",
        "query_type": query_type,
        "query_class": "IN",
        "rcode": "NOERROR",
        "answers": [{"Rdata": answer_rdata(name, query_type), "Type": query_type, "Class": "IN"}],
        "srcaddr": srcaddr,
        "srcport": str(30000 + digest),
        "transport": "UDP",
        "srcids": {},
    }


# Then the VPC's flow log (the documented format, flowlogs.DOCUMENTED_FORMAT) through the
# flow_logs handler: per workload, (address, protocol, port, action) with packets and bytes,
# named by the DNS answers above; EGR-03 for traffic to an address nobody resolved.
FLOW_STORY = {  # workload -> [(destination: a name resolved above, or an address), port, action, bytes]
    "prod-web/service:edge-proxy": [
        ("registry-1.docker.io", 443, "ACCEPT", 48_200_000),  # the image pull
        ("production.cloudflare.docker.com", 443, "ACCEPT", 61_900_000),
        ("198.51.100.77", 22, "REJECT", 240),  # an SSH attempt the security group refused
    ],
    "batch/family:report-worker": [
        ("ghcr.io", 443, "ACCEPT", 3_100_000),
        ("telemetry.insights-vendor.example", 443, "ACCEPT", 912_000),
        ("192.0.2.66", 8443, "ACCEPT", 7_340_000),  # hard-coded: no DNS answer named it
    ],
    "prod-web/service:checkout-api": [
        ("dynamodb.{region}.amazonaws.com", 443, "ACCEPT", 2_480_000),
        ("10.0.20.15", 5432, "ACCEPT", 5_000_000),  # the database, in the VPC: not internet egress
    ],
}


def flow_record(
    account: str, eni: str, src: str, dst: str, port: int, action: str, size: int, start: int, vpc: str
) -> str:
    """One VPC flow-log record in the documented format (flowlogs.DOCUMENTED_FORMAT)."""
    packets = max(1, size // 1200)
    return (
        f"5 {account} {eni} {src} {dst} {40000 + port % 1000} {port} 6 {packets} {size} "
        f"{start} {start + 60} {action} OK {vpc} egress"
    )


def _flow_story(session, info, lambda_handlers, context, store, params, enis, attached) -> list[str]:
    from datetime import timedelta

    from fargate_audit.app import dnslogs
    from fargate_audit.cli import egress
    from fargate_audit.core.egress import duration_seconds
    from fargate_audit.local.estate import DEMO_FLOW_LOG_GROUP

    account, region, vpc = info.account_id, info.region, info.vpcs["prod"]
    messages = []
    for workload, flows in FLOW_STORY.items():
        for n, (eni, ip) in enumerate(enis[workload]):
            for i, (destination, port, action, size) in enumerate(flows):
                name = destination.format(region=region)
                # a name resolved above goes to the address its answer gave
                address = name if name[0].isdigit() else answer_rdata(name)
                start = int((attached + timedelta(minutes=2 + i, seconds=n)).timestamp())
                messages.append(flow_record(account, eni, ip, address, port, action, size, start, vpc))
    payload = {
        "messageType": dnslogs.DATA_MESSAGE,
        "owner": account,
        "logGroup": DEMO_FLOW_LOG_GROUP,
        "logStream": "demo-enis",
        "subscriptionFilters": ["fargate-audit-flow-logs"],
        "logEvents": [
            {"id": f"{38_000_000_000 + i}", "timestamp": 0, "message": m} for i, m in enumerate(messages)
        ],
    }
    first = lambda_handlers.flow_logs(dnslogs.encode_subscription(payload), context)
    answers_of = store.answers
    lookback = duration_seconds(params["dns_answer_lookback"])
    selected = [
        s
        for s in egress.select(store.summaries(), None)
        if s["workload"] in ("prod-web/service:edge-proxy", "batch/family:report-worker")
    ]
    view = egress.discovered_view(
        selected,
        store.destinations,
        params,
        flows_of=store.flows,
        names_of=lambda key: dnslogs.flow_namer(answers_of, key, lookback),
    )
    lines = [
        "",
        "Egress with ports and bytes: the VPC flow log of prod, through the flow_logs handler:",
        f"  - one batch of {first['records']} records: {first['egress']} of internet egress "
        f"({first['rejected']} rejected), {first['private']} to private addresses (not egress); "
        f"{first['destinations']} destinations written, {first['item_writes']} item writes.",
        "  - `fargate-audit discovered` now names each address by the DNS answer that gave it "
        "(before the flow, within dns_answer_lookback):",
    ]
    lines += _indented(egress.format_discovered(view))
    lines.append("  - EGR-03 findings (traffic to internet addresses no DNS answer named):")
    for finding in _findings_of(session, region, "EGR-03"):
        status = finding["Compliance"]["Status"]
        lead = finding["Description"].split(". ", 1)[0] if status == "FAILED" else ""
        lines.append(
            f"      {finding['ProductFields']['fargate-audit/Workload']}: {status}"
            + (f" ({lead.split(': ', 1)[-1]})" if lead else "")
        )
    return lines


def _indented(text: str) -> list[str]:
    return ["      " + line if line else "" for line in text.rstrip("\n").splitlines()]


def _findings_of(session, region: str, rule_id: str) -> list[dict]:
    """Security Hub's findings of one rule (moto ignores filters), by Id."""
    securityhub = session.client("securityhub", region_name=region)
    found = [
        finding
        for page in securityhub.get_paginator("get_findings").paginate()
        for finding in page["Findings"]
        if finding.get("GeneratorId") == f"fargate-audit/{rule_id}"
    ]
    return sorted(found, key=lambda f: f["Id"])


def run_dns_story(out: TextIO, region: str = DEMO_REGION) -> None:
    """Egress discovery on the demo estate: query logs through the dns_logs handler, the
    ``discovered`` view, EGR-01 findings and the allow-list exports (to a temp dir)."""

    def tell(session, estate, lambda_handlers, _local) -> None:
        info = estate.build_demo_estate(session, region)
        lambda_handlers.reset_runtime()
        _tell_dns_story(out, session, info, lambda_handlers)

    _run_story(out, region, "egress discovery part", tell)


def _tell_dns_story(out: TextIO, session, info, lambda_handlers) -> None:
    import tempfile
    from datetime import UTC, datetime, timedelta
    from pathlib import Path

    from fargate_audit.app import dnslogs
    from fargate_audit.cli import egress
    from fargate_audit.local import invoke as local
    from fargate_audit.local.estate import DEMO_QUERY_LOG_GROUP
    from fargate_audit.stores.discovery import DiscoveryStore

    account, region = info.account_id, info.region
    ecs = session.client("ecs", region_name=region)
    context = local.LambdaContext("fargate-audit-demo", 512, 120, region, account=account)
    now = datetime.now(UTC).replace(microsecond=0)
    attached = now - timedelta(minutes=30)  # the ENIs attach, then the images are pulled

    def stamp(moment: datetime) -> str:
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")

    # The tasks start: their RUNNING events (connectivityAt: when their ENI was attached).
    records: list[dict] = []
    enis: dict[str, list[tuple[str, str]]] = {}  # workload -> its tasks' (ENI, address)
    for workload, (pulls, calls) in DNS_STORY_WORKLOADS.items():
        cluster = workload.split("/", 1)[0]
        described = ecs.describe_tasks(cluster=cluster, tasks=info.workloads[workload])["tasks"]
        for n, task in enumerate(described):
            task = dict(
                task, connectivityAt=stamp(attached), pullStartedAt=stamp(attached + timedelta(seconds=3))
            )
            lambda_handlers.task_events(task_state_change(task, account, region, "RUNNING", 2), context)
            details = {
                d["name"]: d["value"]
                for a in task["attachments"]
                if a["type"] == "ElasticNetworkInterface"
                for d in a["details"]
            }
            ip = details["privateIPv4Address"]
            enis.setdefault(workload, []).append((details["networkInterfaceId"], ip))
            vpc = info.vpcs["prod"]
            for i, name in enumerate(pulls):  # before the task started: the image pull
                name = name.format(account=account, region=region)
                at = stamp(attached + timedelta(seconds=5 + i))
                records.append(resolver_record(account, region, vpc, ip, name, at))
                records.append(resolver_record(account, region, vpc, ip, name, at, "AAAA"))
            for minute in range(1, 25, 3):  # then while it runs (cache misses only are logged)
                for name in calls:
                    name = name.format(account=account, region=region)
                    at = stamp(attached + timedelta(minutes=minute, seconds=n))
                    records.append(resolver_record(account, region, vpc, ip, name, at))
    # an instance nobody audits (no Fargate task held the address)
    records.append(
        resolver_record(account, region, info.vpcs["prod"], "10.0.10.250", "ntp.ubuntu.com", stamp(now))
    )
    events = [
        {"id": f"{37_000_000_000 + i}", "timestamp": 0, "message": json.dumps(r, separators=(",", ":"))}
        for i, r in enumerate(records)
    ]
    payload = {
        "messageType": dnslogs.DATA_MESSAGE,
        "owner": account,
        "logGroup": DEMO_QUERY_LOG_GROUP,
        "logStream": f"{info.vpcs['prod']}_demo",
        "subscriptionFilters": ["fargate-audit-dns-logs"],
        "logEvents": events,
    }
    event = dnslogs.encode_subscription(payload)
    first = lambda_handlers.dns_logs(event, context)
    again = lambda_handlers.dns_logs(event, context)  # CloudWatch Logs redelivers it

    rt = lambda_handlers.runtime()
    store = DiscoveryStore(rt.recorder.table)
    params = rt.catalog.defaults()
    selected = egress.select(store.summaries(), None, include_unattributed=True)
    view = egress.discovered_view(selected, store.destinations, params)
    lines = [
        "",
        "Egress discovery: Route 53 Resolver query logs of VPC prod, through the dns_logs handler:",
        f"  - one CloudWatch Logs subscription batch of {first['records']} records: "
        f"{first['attributed']} attributed to the task that held the source address at the time "
        f"(registry pulls included: they happen between connectivityAt and startedAt), "
        f"{first['unattributed']} unattributed; {first['destinations']} destinations written in "
        f"{first['chunks_written']} transaction(s), {first['item_writes']} item writes.",
        f"  - the same batch delivered again: {again['status']}, {again['chunks_skipped']} chunk(s) skipped, "
        "nothing counted twice.",
        "  - `fargate-audit discovered`:",
    ]
    lines += _indented(egress.format_discovered(view))
    lines.append("  - EGR-01 findings in Security Hub (one per workload; evidence: the unapproved names):")
    for finding in _findings_of(session, region, "EGR-01"):
        evidence = finding["ProductFields"].get("fargate-audit/Evidence", "")
        lines.append(
            f"      {finding['ProductFields']['fargate-audit/Workload']}: "
            f"{finding['Compliance']['Status']}" + (f" ({evidence})" if evidence else "")
        )
    lines += _flow_story(session, info, lambda_handlers, context, store, params, enis, attached)
    folder = Path(tempfile.mkdtemp(prefix="fargate-audit-demo-"))
    checkout = egress.select(store.summaries(), "prod-web/service:checkout-api")
    checkout_view = egress.discovered_view(checkout, store.destinations, params)
    domains = egress.export_domains(checkout_view, params)
    rule_group = egress.network_firewall_rule_group(domains, name="checkout-api-egress")
    egress.validate_rule_group_request(rule_group)
    nfw = folder / "checkout-api.network-firewall.json"
    nfw.write_text(json.dumps(rule_group, indent=2) + "\n", encoding="utf-8")
    dnsfw = folder / "checkout-api.dns-firewall.txt"
    dnsfw.write_text(egress.dns_firewall_domain_list(domains), encoding="utf-8")
    targets = rule_group["RuleGroup"]["RulesSource"]["RulesSourceList"]["Targets"]
    lines += [
        "  - from discovery to enforcement, `fargate-audit discovered --workload "
        "prod-web/service:checkout-api --export network-firewall FILE` (and dns-firewall):",
        f"      {nfw}  (CreateRuleGroup input, ALLOWLIST on TLS_SNI and HTTP_HOST: {', '.join(targets)})",
        f"      {dnsfw}  (ImportFirewallDomains file):",
    ]
    lines += ["        " + line for line in dnsfw.read_text(encoding="utf-8").splitlines()[:4]]
    out.write("\n".join(lines) + "\n")
