"""End to end: ``fargate-audit invoke`` runs a Lambda handler against a moto server
(AWS_ENDPOINT_URL, 127.0.0.1), as a user would, then ``history`` and ``findings`` read the
table it filled.

The server starts empty: ``invoke`` creates the posture table from template.yaml, enables
Security Hub and (for the planner) the sweep queue. The samples are used verbatim, so the
task's cluster, task definition and ENI do not exist there: the audit records what it
could not collect as ERROR (findings NOT_AVAILABLE), which is what a real account shows
when those reads fail. Every command runs the installed console script in a subprocess
from the repository root (where template.yaml is).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
from fargate_audit.app.flowlogs import DOCUMENTED_FORMAT
from moto.server import ThreadedMotoServer

REPO = Path(__file__).resolve().parents[2]
SCRIPT = Path(sys.executable).with_name("fargate-audit")
REGION = "eu-west-1"
TASK_ARN = "arn:aws:ecs:eu-west-1:123456789012:task/prod-web/7f3c2a1b9d8e4f60a1b2c3d4e5f60718"
TABLE = "fargate-audit-posture"


@pytest.fixture(scope="module")
def endpoint():
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture(scope="module")
def env(endpoint, tmp_path_factory):
    empty = tmp_path_factory.mktemp("aws") / "empty"
    empty.write_text("")
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "FARGATE_AUDIT_"))}
    environment |= {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_CONFIG_FILE": str(empty),
        "AWS_SHARED_CREDENTIALS_FILE": str(empty),
    }
    return environment


def run(env, *args, check_exit: int | None = 0) -> subprocess.CompletedProcess:
    assert SCRIPT.exists(), "install the package (pip install -e .) to get the console script"
    done = subprocess.run(
        [str(SCRIPT), *args], capture_output=True, text=True, env=env, cwd=REPO, timeout=120
    )
    if check_exit is not None:
        assert done.returncode == check_exit, done.stderr
    return done


def client(endpoint, service):
    return boto3.client(
        service,
        region_name=REGION,
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.fixture(scope="module")
def invoked(env):
    """The RUNNING sample through the task_events handler (the module's first invoke)."""
    return run(env, "invoke", "task_events", "events/ecs-task-running.json")


def test_invoke_creates_the_table_from_the_template_and_prints_the_handler_result(invoked, endpoint):
    result = json.loads(invoked.stdout)  # stdout is the return value only
    assert result["status"] == "audited" and result["record"] == "created"
    assert result["task_arn"] == TASK_ARN
    assert result["findings"]["imported"] > 0
    table = client(endpoint, "dynamodb").describe_table(TableName=TABLE)["Table"]
    assert [i["IndexName"] for i in table["GlobalSecondaryIndexes"]] == ["gsi1"]
    assert client(endpoint, "securityhub").describe_hub()["HubArn"].endswith(":hub/default")


def test_invoke_sends_the_handler_logs_and_metrics_to_stderr(invoked):
    assert '"_aws"' in invoked.stderr  # the EMF metrics document
    assert "task event audited" in invoked.stderr
    assert '"_aws"' not in invoked.stdout


def test_history_shows_the_first_audit_oldest_first(invoked, env):
    entries = json.loads(run(env, "history", TASK_ARN, "--format", "json").stdout)

    (first,) = entries
    assert set(first) == {"at", "cause", "rules", "facts"}
    assert first["cause"]["type"] == "ecs-event" and first["cause"]["task_version"] == 4
    assert all(before is None for before, _ in first["rules"].values())
    assert first["rules"]["NET-01"][1] == "ERROR"  # the sample's ENI does not exist here
    table = run(env, "history", TASK_ARN).stdout
    assert table.startswith(f"history of {TASK_ARN}\n") and "first audit:" in table


def test_findings_lists_the_active_findings_of_the_workload(invoked, env):
    findings = json.loads(run(env, "findings", "--format", "json").stdout)

    assert findings and {f["workload"] for f in findings} == {"prod-web/service:web"}
    assert {
        "finding_id",
        "account_id",
        "region",
        "workload",
        "rule_id",
        "severity",
        "status",
        "title",
        "updated_at",
    } == set(findings[0])
    assert "NOT_AVAILABLE" in {f["status"] for f in findings}
    table = run(env, "findings").stdout
    assert table.splitlines()[0].split()[:4] == ["WORKLOAD", "RULE", "SEVERITY", "STATUS"]


def test_invoke_flow_logs_attributes_the_sample_records_to_the_running_sample_task(invoked, env, endpoint):
    """The flow-log sample is the RUNNING sample's ENI: its internet egress is recorded per
    destination (IPv4 and IPv6, the REJECTed attempt apart) and `discovered` shows it. On
    the emulator `invoke` first creates the flow log delivering to the sample's log group
    (in the documented format, once), which the handler finds with DescribeFlowLogs."""
    result = json.loads(run(env, "invoke", "flow_logs", "events/flow-log-records.json").stdout)

    assert result["status"] == "recorded" and result["workloads"] == [
        "WL#123456789012#eu-west-1#prod-web#service:web"
    ]
    assert (result["egress"], result["rejected"], result["ingress"], result["private"]) == (5, 1, 1, 2)
    assert (result["no_data"], result["other_enis"], result["malformed"]) == (1, 0, [])
    group = [{"Name": "log-group-name", "Values": ["/vpc/flow-logs/prod"]}]
    (flow_log,) = client(endpoint, "ec2").describe_flow_logs(Filters=group)["FlowLogs"]
    assert result["format_source"] == f"flow log {flow_log['FlowLogId']}"
    assert flow_log["LogFormat"] == DOCUMENTED_FORMAT  # as templates/vpc-flow-log.yaml creates it
    again = json.loads(run(env, "invoke", "flow_logs", "events/flow-log-records.json").stdout)
    assert again["status"] == "duplicate" and again["item_writes"] == 0
    assert again["format_source"] == result["format_source"]  # the same flow log, not a second one
    table = run(env, "discovered", "--workload", "service:web").stdout  # as the README shows it
    assert "in flow logs: 4 destinations (1 rejected)" in table
    rows = [line.split() for line in table.splitlines() if line.startswith("  52.")]
    assert rows == [
        [
            "52.216.40.10",
            "tcp",
            "443",
            "ACCEPT",
            "9120",
            "611034",
            "2026-11-20",
            "09:58:20",
            "2026-11-20",
            "09:59:19",
            "-",
        ],
        [
            "52.94.218.7",
            "tcp",
            "443",
            "ACCEPT",
            "424",
            "40421",
            "2026-11-20",
            "09:58:20",
            "2026-11-20",
            "10:01:19",
            "-",
        ],
    ]


def test_invoke_by_logical_id_of_the_stopped_sample_archives_the_findings(invoked, env):
    result = json.loads(run(env, "invoke", "TaskEventsFunction", "events/ecs-task-stopped.json").stdout)

    assert result["status"] == "stopped" and result["findings"]["archived"] > 0
    assert json.loads(run(env, "findings", "--format", "json").stdout) == []
    history = json.loads(run(env, "history", TASK_ARN, "--format", "json").stdout)
    assert [e["cause"]["task_version"] for e in history] == [4, 7]


def test_invoke_of_the_planner_creates_the_sweep_queue(env, endpoint):
    done = run(env, "invoke", "sweep_planner", "events/scheduled-event.json")
    result = json.loads(done.stdout)
    assert "No application metrics to publish" not in done.stderr  # Powertools' warning: noise here

    # the emulator lists no cluster; the module's other tests may have left ACTIVE findings
    # of the sample's cluster, which the planner then sweeps as deleted (their tasks retired)
    assert result["status"] == "planned" and result["tasks"] == 0 and result["unreachable"] == []
    assert client(endpoint, "sqs").get_queue_url(QueueName="fargate-audit-SweepQueue")["QueueUrl"]


def test_unknown_function_is_one_error_line_and_exit_2(env):
    done = run(env, "invoke", "nope", "events/ecs-task-running.json", check_exit=2)

    assert done.stderr.count("\n") == 1
    assert done.stderr.startswith("fargate-audit: error: nope: no such function in template.yaml")


@pytest.mark.parametrize("given", ["not-an-arn", "7f3c2a1b9d8e4f60a1b2c3d4e5f60718", ""])
def test_history_of_something_not_a_task_arn_is_one_error_line_and_exit_2(env, given):
    done = run(env, "history", given, check_exit=2)
    assert done.stderr == (
        f"fargate-audit: error: TASK_ARN: {given!r} is not an ECS task ARN "
        "(arn:PARTITION:ecs:REGION:ACCOUNT:task/CLUSTER/ID)\n"
    )


def test_history_of_a_missing_table_is_one_error_line_and_exit_2(env):
    done = run(env, "history", TASK_ARN, "--table", "no-such-table", check_exit=2)

    assert done.stderr == (
        "fargate-audit: error: table no-such-table not found (deploy the stack or run "
        "`fargate-audit invoke` against an emulator first)\n"
    )


def test_findings_reads_the_table_named_by_the_environment(env):
    done = run(dict(env, FARGATE_AUDIT_TABLE="another-table"), "findings", check_exit=2)

    assert "table another-table not found" in done.stderr


def test_a_handler_failure_is_one_error_line_and_exit_2(env, tmp_path):
    # one record the worker cannot take (its body is no sweep message): every record of the
    # batch failed. (The sample's messages both succeed: ECS no longer knows their cluster,
    # DescribeClusters MISSING, so its recorded tasks are retired.)
    sample = json.loads((REPO / "events/sweep-message.json").read_text())
    sample["Records"] = [dict(sample["Records"][0], body='{"account_id": "123456789012"}')]
    event = tmp_path / "whole-cluster.json"
    event.write_text(json.dumps(sample))
    done = run(env, "invoke", "sweep_worker", str(event), check_exit=2)

    error_lines = [line for line in done.stderr.splitlines() if line.startswith("fargate-audit: error:")]
    assert error_lines == [
        "fargate-audit: error: sweep_worker raised BatchProcessingError: All records failed processing. "
        "1 individual errors logged separately below."
    ]
    assert done.stdout == ""


def test_invoke_without_credentials_is_one_error_line_and_exit_2(env):
    """As scan says it (a Lambda always has its account's credentials): not a made-up
    account 000000000000 whose events are then 'rejected' with exit 0."""
    bare = {
        k: v
        for k, v in env.items()
        if k not in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
    }
    bare["AWS_EC2_METADATA_DISABLED"] = "true"
    done = run(bare, "invoke", "task_events", "events/ecs-task-running.json", check_exit=2)
    assert done.stdout == "" and done.stderr.startswith("fargate-audit: error: no AWS credentials")
    assert len(done.stderr.splitlines()) == 1, done.stderr


MEMBER = "222222222222"


def test_parameter_overrides_audit_a_member_account_through_its_role_into_its_own_security_hub(
    env, endpoint, tmp_path
):
    """interface.md: `--parameter-overrides` sets template parameters as `sam deploy` takes
    them; with AuditedAccounts the function reads and imports a member's event through
    arn:aws:iam::A:role/{MemberRoleName}, and A's findings live in A's own Security Hub."""
    event = tmp_path / "member-running.json"
    event.write_text((REPO / "events/ecs-task-running.json").read_text().replace("123456789012", MEMBER))

    refused = json.loads(run(env, "invoke", "task_events", str(event)).stdout)
    assert refused["status"] == "rejected"
    assert f"account {MEMBER} is not in the allowed accounts" in refused["reason"]

    done = run(
        env,
        "invoke",
        "task_events",
        str(event),
        "--parameter-overrides",
        f"AuditedAccounts={MEMBER}",
        "MemberRoleName=audit-reader MemberExternalId=ext-0123",
    )
    result = json.loads(done.stdout)
    assert result["status"] == "audited" and result["findings"]["imported"] > 0
    assert result["task_arn"].split(":")[4] == MEMBER

    credentials = client(endpoint, "sts").assume_role(
        RoleArn=f"arn:aws:iam::{MEMBER}:role/audit-reader", RoleSessionName="check"
    )["Credentials"]
    member_hub = boto3.client(
        "securityhub",
        region_name=REGION,
        endpoint_url=endpoint,
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
    )
    in_member = member_hub.get_findings(MaxResults=100)["Findings"]
    assert in_member and {f["AwsAccountId"] for f in in_member} == {MEMBER}
    assert {f["ProductArn"] for f in in_member} == {
        f"arn:aws:securityhub:{REGION}:{MEMBER}:product/{MEMBER}/default"
    }
    caller = client(endpoint, "securityhub").get_findings(MaxResults=100)["Findings"]
    assert MEMBER not in {f["AwsAccountId"] for f in caller}


def test_a_bad_parameter_override_is_one_error_line_and_exit_2(env):
    done = run(
        env,
        "invoke",
        "task_events",
        "events/ecs-task-running.json",
        "--parameter-overrides",
        "MemberExternalId=not secret!",
        check_exit=2,
    )

    assert done.stderr.count("\n") == 1
    assert done.stderr.startswith(
        "fargate-audit: error: --parameter-overrides: MemberExternalId: the value (NoEcho, not shown)"
    )
    assert "not secret" not in done.stderr and done.stdout == ""


@pytest.mark.parametrize("argv", [("findings",), ("history", TASK_ARN), ("discovered",)])
def test_a_table_command_without_a_region_names_only_the_ways_it_takes_one(env, argv):
    without = {k: v for k, v in env.items() if k not in ("AWS_REGION", "AWS_DEFAULT_REGION")}
    done = run(without, *argv, check_exit=2)

    assert (
        done.stderr
        == "fargate-audit: error: no AWS region configured (set AWS_REGION or AWS_DEFAULT_REGION)\n"
    )


def test_invoke_flow_logs_with_a_flow_log_format_of_its_own_reads_by_it(invoked, env, endpoint, tmp_path):
    """--parameter-overrides FlowLogFormat=...: the deployed case that parameter is for (no
    flow log of the account delivers to the group), so invoke creates none and the
    handler reads the batch by the parameter, in whatever field order it has."""
    from fargate_audit.app import dnslogs

    reordered = (
        "${flow-direction} ${action} ${dstport} ${protocol} ${bytes} ${packets} ${start} ${end} "
        "${dstaddr} ${srcaddr} ${interface-id} ${log-status}"
    )
    group = "/vpc/flow-logs/other-account"
    event = tmp_path / "flow.json"
    message = "egress ACCEPT 443 6 700 5 1796650000 1796650030 52.95.3.3 10.0.1.25 eni-0f1e2d3c4b5a69788 OK"
    payload = {
        "messageType": "DATA_MESSAGE",
        "owner": "123456789012",
        "logGroup": group,
        "logStream": "eni-0f1e2d3c4b5a69788-all",
        "subscriptionFilters": ["fargate-audit-flow-logs"],
        "logEvents": [{"id": "38000000000000000001", "timestamp": 1796650000000, "message": message}],
    }
    event.write_text(json.dumps(dnslogs.encode_subscription(payload)))

    result = json.loads(
        run(
            env, "invoke", "flow_logs", str(event), "--parameter-overrides", f"FlowLogFormat={reordered}"
        ).stdout
    )

    assert result["format_source"] == "parameter (no flow log found for the log group)"
    assert result["malformed"] == [] and result["records"] == 1
    by_group = [{"Name": "log-group-name", "Values": [group]}]
    assert client(endpoint, "ec2").describe_flow_logs(Filters=by_group)["FlowLogs"] == []
