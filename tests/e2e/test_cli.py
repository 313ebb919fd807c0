"""End to end: the ``fargate-audit`` command line as a user runs it.

One emulated account (moto, in-process) is shared by the module: one VPC with a public
subnet (default route to an internet gateway), a security group open to the world on
TCP 22 and 443, two clusters. ``prod`` runs a two-task service ``web`` (one task with a
public IPv4) and one standalone ``batch`` task; ``quiet`` runs one private task. ``main``
is called in-process; the installed console script is run once in a subprocess.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import stat
import subprocess
import sys
import threading
from pathlib import Path

import boto3
import botocore.session
import jsonschema
import pytest
from botocore.validate import ParamValidator
from fargate_audit.cli import commands as cli
from fargate_audit.core import rules
from moto import mock_aws
from moto.moto_api import state_manager
from support import ocsf_check

REGION = "eu-west-1"
REPO = Path(__file__).resolve().parents[2]
SCHEMA = REPO / "layers" / "fargate_audit" / "schemas" / "scan-report.schema.json"
FAKE_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
}


# --------------------------------------------------------------------------- the estate


@pytest.fixture(scope="module")
def module_env():
    with pytest.MonkeyPatch.context() as patch:
        for name, value in FAKE_ENV.items():
            patch.setenv(name, value)
        for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "FARGATE_AUDIT_RULES_DIR", "NO_COLOR"):
            patch.delenv(name, raising=False)
        yield patch


def _eni_of(task: dict) -> str:
    (attachment,) = [a for a in task["attachments"] if a["type"] == "ElasticNetworkInterface"]
    return next(d["value"] for d in attachment["details"] if d["name"] == "networkInterfaceId")


@pytest.fixture(scope="module")
def estate(module_env):
    with mock_aws():
        state_manager.set_transition(
            model_name="ecs::task", transition={"progression": "manual", "times": 10**9}
        )
        session = boto3.Session(region_name=REGION)
        ec2, ecs = session.client("ec2"), session.client("ecs")
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
        igw = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
        ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)
        table = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
        ec2.create_route(RouteTableId=table, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw)
        ec2.associate_route_table(RouteTableId=table, SubnetId=subnet)
        group = ec2.create_security_group(GroupName="web", Description="web tasks", VpcId=vpc)["GroupId"]
        ec2.authorize_security_group_ingress(
            GroupId=group,
            IpPermissions=[
                {"IpProtocol": "tcp", "FromPort": port, "ToPort": port, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}
                for port in (22, 443)
            ],
        )
        ecs.create_cluster(clusterName="prod", settings=[{"name": "containerInsights", "value": "enabled"}])
        ecs.create_cluster(clusterName="quiet")
        fargate = {
            "networkMode": "awsvpc",
            "requiresCompatibilities": ["FARGATE"],
            "cpu": "256",
            "memory": "512",
        }
        web = ecs.register_task_definition(
            family="web",
            containerDefinitions=[
                {
                    "name": "app",
                    "image": "nginx:1.25",
                    "memory": 512,
                    "environment": [{"name": "DB_PASSWORD", "value": "CANARY-VALUE-e2e"}],
                }
            ],
            **fargate,
        )["taskDefinition"]["taskDefinitionArn"]
        batch = ecs.register_task_definition(
            family="batch",
            containerDefinitions=[{"name": "job", "image": "busybox", "memory": 256}],
            **fargate,
        )["taskDefinition"]["taskDefinitionArn"]
        network = {"awsvpcConfiguration": {"subnets": [subnet], "securityGroups": [group]}}

        def run(cluster, definition, count, **extra):
            return ecs.run_task(
                cluster=cluster,
                taskDefinition=definition,
                launchType="FARGATE",
                platformVersion="1.4.0",
                count=count,
                networkConfiguration=network,
                **extra,
            )["tasks"]

        web_tasks = run("prod", web, 2, group="service:web", startedBy="ecs-svc/1234567890")
        batch_tasks = run("prod", batch, 1)
        quiet_tasks = run("quiet", batch, 1)
        allocation = ec2.allocate_address(Domain="vpc")
        ec2.associate_address(
            AllocationId=allocation["AllocationId"], NetworkInterfaceId=_eni_of(web_tasks[0])
        )
        yield {
            "web": [t["taskArn"] for t in web_tasks],
            "batch": [t["taskArn"] for t in batch_tasks],
            "quiet": [t["taskArn"] for t in quiet_tasks],
            "prod_tasks": {t["taskArn"] for t in web_tasks + batch_tasks},
            "public_ip": allocation["PublicIp"],
        }


@pytest.fixture(scope="module")
def catalog():
    return rules.load_catalog()


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(list(argv), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def assert_one_error_line(err: str, *fragments: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("fargate-audit: error: "), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], err
    return lines[0]


# --------------------------------------------------------------------------- rules


def test_rules_list_shows_every_rule_with_id_severity_and_title(catalog):
    code, out, err = run_cli("rules", "list")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].split() == ["ID", "SEVERITY", "TITLE"]
    assert len(lines) == 1 + len(catalog.rules)
    for rule, line in zip(catalog.rules, lines[1:], strict=True):
        assert line.split(None, 2) == [rule.id, rule.severity, rule.title]


def test_rules_list_json_carries_ids_severities_titles_and_mappings(catalog):
    code, out, _ = run_cli("rules", "list", "--format", "json")
    assert code == 0
    items = json.loads(out)
    assert [i["id"] for i in items] == [r.id for r in catalog.rules]
    assert all(i["severity"] and i["title"] and i["remediation"] for i in items)
    assert {i["id"]: i["mappings"] for i in items if i["mappings"]} == {
        k: v for k, v in catalog.mappings.items() if v
    }


def test_rules_validate_accepts_the_repository_rules(catalog):
    code, out, err = run_cli("rules", "validate", str(REPO / "rules"))
    assert (code, err) == (0, "")
    assert out.startswith(f"{len(catalog.rules)} rules valid")


def test_rules_validate_rejects_a_broken_copy_naming_file_and_field(tmp_path):
    broken = tmp_path / "rules"
    shutil.copytree(REPO / "rules", broken)
    path = broken / "NET-01" / "rule.yaml"
    text = path.read_text()
    assert "severity: HIGH" in text
    path.write_text(text.replace("severity: HIGH", "severity: SEVERE"))
    code, out, err = run_cli("rules", "validate", str(broken))
    assert (code, out) == (2, "")
    assert_one_error_line(err, "NET-01/rule.yaml", "severity")


def test_rules_validate_runs_every_fixture_and_counts_them(catalog):
    fixtures = sum(len(items) for rule in catalog.rules for items in rule.fixtures.values())
    code, out, err = run_cli("rules", "validate", str(REPO / "rules"))
    assert (code, err) == (0, "")
    assert out == f"{len(catalog.rules)} rules valid in {REPO / 'rules'} ({fixtures} fixtures passed)\n"


def test_rules_validate_names_each_fixture_that_does_not_give_its_status(tmp_path):
    """A rule's meaning is its fixtures too: a custom catalog whose check no longer does what
    its fixtures say is refused, one line per fixture, then the count."""
    own = tmp_path / "rules"
    shutil.copytree(REPO / "rules", own, ignore=shutil.ignore_patterns("__pycache__"))
    path = own / "NET-06" / "rule.yaml"
    text = path.read_text()
    assert "name: default}]" in text
    path.write_text(text.replace("name: default}]", "name: default-web}]", 1))
    code, out, err = run_cli("rules", "validate", str(own))
    assert (code, out) == (2, "")
    lines = err.splitlines()
    assert lines[0] == (
        f"fargate-audit: error: {path}: fixtures.fail 'default_group_only': expected FAILED, got PASSED "
        '(evidence {"security_groups": []})'
    )
    assert lines[-1].startswith("fargate-audit: error: 1 of ") and lines[-1].endswith(
        f" fixtures failed in {own}"
    )
    assert len(lines) == 2


def test_rules_validate_runs_a_custom_catalog_without_base_documents_over_the_shipped_ones(tmp_path, catalog):
    own = tmp_path / "rules"
    shutil.copytree(REPO / "rules", own, ignore=shutil.ignore_patterns("__pycache__", "base_*.json"))
    assert not (own / "base_posture.json").exists()
    code, out, err = run_cli("rules", "validate", str(own))
    assert (code, err) == (0, "")
    assert out.startswith(f"{len(catalog.rules)} rules valid in {own} (")


def test_rules_validate_refuses_a_base_posture_that_is_not_an_object(tmp_path):
    own = tmp_path / "rules"
    shutil.copytree(REPO / "rules", own, ignore=shutil.ignore_patterns("__pycache__"))
    (own / "base_posture.json").write_text("[]")
    code, _, err = run_cli("rules", "validate", str(own))
    assert code == 2
    assert_one_error_line(err, "base_posture.json", "must be a JSON object")


def test_rules_validate_names_a_fixture_on_which_the_check_raises(tmp_path):
    """A fixture whose patch is no posture (a security group that is a number) makes the
    check raise, which is that rule's ERROR: one line naming the fixture, the others run."""
    own = tmp_path / "rules"
    shutil.copytree(REPO / "rules", own, ignore=shutil.ignore_patterns("__pycache__"))
    path = own / "NET-06" / "rule.yaml"
    text = path.read_text()
    assert "security_groups: [{id: sg-0123456789abcdef0, name: default-web}]" in text
    path.write_text(
        text.replace(
            "security_groups: [{id: sg-0123456789abcdef0, name: default-web}]", "security_groups: [5]"
        )
    )
    code, _, err = run_cli("rules", "validate", str(own))
    assert code == 2
    lines = err.splitlines()
    assert lines[0] == (
        f"fargate-audit: error: {path}: fixtures.pass 'group_name_only_starts_with_default': "
        'expected PASSED, got ERROR (evidence {"error": "NET-06: check default_security_group could not '
        "judge this task's facts (AttributeError)\"})"
    )
    assert len(lines) == 2 and " 1 of " in lines[1]


def test_rules_validate_of_a_missing_directory_is_one_error_line(tmp_path):
    code, _, err = run_cli("rules", "validate", str(tmp_path / "nowhere"))
    assert code == 2
    assert_one_error_line(err, "nowhere")


# --------------------------------------------------------------------------- scan formats


def test_scan_table_shows_workloads_failures_and_summary(estate):
    code, out, err = run_cli("scan", "--cluster", "prod")
    assert code == 1, err
    assert err == ""
    lines = out.splitlines()
    assert "prod/service:web  (2 tasks)" in lines
    assert "prod/family:batch  (1 task)" in lines
    assert any(line.lstrip().startswith("CRITICAL") and "NET-02" in line for line in lines)
    assert lines[-1].startswith("3 tasks in 1 cluster: ")
    assert "\x1b[" not in out  # not a terminal: no colour


def test_scan_json_validates_against_the_schema_and_covers_every_task_and_rule(estate, catalog):
    code, out, err = run_cli("scan", "--format", "json", "--cluster", "prod")
    assert code == 1, err
    doc = json.loads(out)
    jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text())).validate(doc)
    assert {t["task_arn"] for t in doc["tasks"]} == estate["prod_tasks"]
    # every rule but EGR-01 (DNS query logs, which a scan cannot read) for every task
    assert len(doc["results"]) == len(estate["prod_tasks"]) * len(catalog.posture_rules)
    assert "EGR-01" not in {r["rule_id"] for r in doc["results"]}
    public = next(t for t in doc["tasks"] if t["task_arn"] == estate["web"][0])
    assert public["public_ip"] == estate["public_ip"]
    assert public["egress_paths"]["ipv4"] == "internet-gateway"
    net02 = {r["task_arn"]: r["status"] for r in doc["results"] if r["rule_id"] == "NET-02"}
    assert net02[estate["web"][0]] == "FAILED" and net02[estate["web"][1]] == "PASSED"
    assert doc["stats"]["api_calls"].get("ecs.DescribeTasks", 0) >= 1
    assert doc["scope"]["regions"] == [REGION]


def test_scan_asff_is_one_valid_finding_per_workload_and_rule(estate):
    code, out, err = run_cli("scan", "--format", "asff", "--cluster", "prod")
    assert code == 1, err
    findings = json.loads(out)
    model = botocore.session.get_session().get_service_model("securityhub")
    shape = model.operation_model("BatchImportFindings").input_shape
    report = ParamValidator().validate({"Findings": findings}, shape)
    assert not report.has_errors(), report.generate_report()
    ids = [f["Id"] for f in findings]
    assert len(ids) == len(set(ids))
    workloads = {f["ProductFields"]["fargate-audit/Workload"] for f in findings}
    assert workloads == {"prod/service:web", "prod/family:batch"}
    net02 = next(f for f in findings if f["Id"].endswith("/prod/service:web/NET-02"))
    assert net02["Compliance"]["Status"] == "FAILED"
    assert net02["Resources"][0]["Type"] == "AwsEcsService"
    assert [r["Id"] for r in net02["Resources"] if r["Type"] == "AwsEcsTask"] == [estate["web"][0]]


def test_scan_ocsf_writes_one_valid_compliance_finding_per_task_and_rule(estate, tmp_path):
    target = tmp_path / "findings.ocsf.json"
    code, out, err = run_cli("scan", "--format", "ocsf", "--cluster", "prod", "--output", str(target))
    assert (code, out, err) == (1, "", "")
    events = json.loads(target.read_text())
    code, report_text, _ = run_cli("scan", "--format", "json", "--cluster", "prod")
    results = json.loads(report_text)["results"]
    assert len(events) == len(results)
    assert {(e["resources"][0]["uid"], e["compliance"]["control"]) for e in events} == {
        (r["task_arn"], r["rule_id"]) for r in results
    }
    for event in events:
        assert ocsf_check.problems(event) == [], event["finding_info"]["uid"]
    assert {e["class_uid"] for e in events} == {2003}
    net02 = {e["resources"][0]["uid"]: e for e in events if e["compliance"]["control"] == "NET-02"}
    assert net02[estate["web"][0]]["compliance"]["status"] == "Fail"
    assert net02[estate["web"][1]]["compliance"]["status"] == "Pass"
    assert net02[estate["web"][0]]["finding_info"]["uid"].startswith(
        net02[estate["web"][0]]["metadata"]["correlation_uid"] + "/"
    )
    assert net02[estate["web"][0]]["metadata"]["correlation_uid"].endswith("/prod/service:web/NET-02")


def test_no_output_format_leaks_an_environment_value(estate):
    for fmt in ("table", "json", "asff", "ocsf"):
        _, out, _ = run_cli("scan", "--format", fmt, "--cluster", "prod")
        assert "DB_PASSWORD" in out or fmt == "table"
        assert "CANARY-VALUE-e2e" not in out


def test_output_option_writes_the_file_and_nothing_to_stdout(estate, tmp_path):
    target = tmp_path / "report.json"
    code, out, err = run_cli("scan", "--format", "json", "--cluster", "prod", "--output", str(target))
    assert (code, out, err) == (1, "", "")
    assert json.loads(target.read_text())["report_version"] == 1


def test_output_through_a_link_or_to_a_fifo_keeps_the_path_what_it_was(estate, tmp_path):
    """--output replaces a regular file only once complete; a symbolic link keeps being a
    link (its target gets the report) and a device or FIFO is written in place, never
    swapped for a regular file (``--output /dev/null`` run as root replaced the device)."""
    target, link = tmp_path / "target.json", tmp_path / "link.json"
    target.write_text("old")
    link.symlink_to(target)
    code, out, err = run_cli("scan", "--format", "json", "--cluster", "quiet", "--output", str(link))
    assert (code, out, err) == (1, "", "")
    assert link.is_symlink() and json.loads(target.read_text())["report_version"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.json", "target.json"]  # no temporary left

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    received: list[str] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_text()), daemon=True)
    reader.start()
    code, out, err = run_cli("scan", "--format", "json", "--cluster", "quiet", "--output", str(fifo))
    reader.join(timeout=60)
    assert (code, out, err) == (1, "", "")
    assert stat.S_ISFIFO(fifo.stat().st_mode) and json.loads(received[0])["report_version"] == 1


def test_output_dash_is_stdout_and_writes_no_file(estate, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli("scan", "--format", "json", "--cluster", "quiet", "--output", "-")

    assert (code, err) == (1, "") and json.loads(out)["report_version"] == 1
    assert list(tmp_path.iterdir()) == []


def test_a_report_that_fails_half_written_leaves_the_previous_file_and_no_temporary(
    estate, tmp_path, monkeypatch
):
    """--output streams into a temporary file beside the target and renames it only once
    complete: a write that fails midway (disk full) is one error line, and whatever the
    target held before is still there."""
    from fargate_audit.core import report

    target = tmp_path / "report.json"
    target.write_text("previous report\n")
    real_writer = report._bytes_writer

    def failing_writer(stream):
        write = real_writer(stream)
        written = []

        def write_then_fail(data: bytes):
            written.append(data)
            if len(written) > 3:
                raise OSError(28, "No space left on device")
            return write(data)

        return write_then_fail

    monkeypatch.setattr(report, "_bytes_writer", failing_writer)
    code, out, err = run_cli("scan", "--format", "json", "--cluster", "prod", "--output", str(target))
    assert (code, out) == (2, "")
    assert_one_error_line(err, "report.json", "No space left on device")
    assert target.read_text() == "previous report\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]


def test_output_to_an_unwritable_place_is_one_error_line(estate, tmp_path):
    code, _, err = run_cli(
        "scan", "--cluster", "quiet", "--output", str(tmp_path / "no" / "such" / "dir.txt")
    )
    assert code == 2
    assert_one_error_line(err, "dir.txt")


# --------------------------------------------------------------------------- exit codes


def test_exit_0_when_no_failure_reaches_the_fail_on_threshold(estate):
    code, out, err = run_cli("scan", "--cluster", "quiet", "--fail-on", "CRITICAL")
    assert (code, err) == (0, ""), out
    code, _, _ = run_cli("scan", "--cluster", "quiet", "--fail-on", "low")
    assert code == 1


def test_a_cluster_given_by_name_and_by_arn_is_scanned_once(estate):
    arn = f"arn:aws:ecs:{REGION}:123456789012:cluster/quiet"
    code, out, err = run_cli("scan", "--cluster", arn, "--cluster", "quiet", "--format", "json")

    report = json.loads(out)
    assert report["summary"]["tasks"] == 1 and [t["task_arn"] for t in report["tasks"]] == estate["quiet"]
    assert report["errors"] == [] and err == ""


def test_a_cluster_arn_is_looked_up_in_its_own_region_and_a_name_where_it_is(estate):
    """An ARN names its region: it is scanned there, whatever --region says, and looked for
    nowhere else; a name missing from one region of several but found in another is no
    error. Before, both gave a false 'could not be read' warning and exit >= 1 (or exit 2
    when the ARN's region was not asked for)."""
    arn = f"arn:aws:ecs:{REGION}:123456789012:cluster/quiet"
    for argv in (
        ("--cluster", arn),
        ("--region", "us-east-1", "--cluster", arn),
        ("--region", "us-east-1", "--region", REGION, "--cluster", arn),
        ("--region", "us-east-1", "--region", REGION, "--cluster", "quiet"),
    ):
        code, out, err = run_cli("scan", *argv, "--format", "json", "--fail-on", "CRITICAL")
        report = json.loads(out)
        assert (code, err, report["errors"]) == (0, "", []), argv
        assert [t["task_arn"] for t in report["tasks"]] == estate["quiet"], argv
        assert REGION in report["scope"]["regions"]

    code, out, err = run_cli("scan", "--region", "us-east-1", "--region", REGION, "--cluster", "nosuch")
    assert code == 2 and err.count("nosuch") == 1 and "not found" in err


@pytest.mark.parametrize("org", [(), ("--accounts", "123456789012")], ids=["single", "organization"])
def test_a_malformed_region_is_one_error_line_before_anything_runs(estate, org):
    code, out, err = run_cli("scan", *org, "--region", REGION, "--region", "bad_region!")
    assert (code, out) == (2, "")
    assert err == "fargate-audit: error: --region 'bad_region!': not an AWS region name (e.g. eu-west-1)\n"


def _denying(monkeypatch, operation: str, cluster: str) -> None:
    """Every call of ``operation`` on ``cluster`` refused as AWS refuses it."""
    from botocore.client import BaseClient
    from botocore.exceptions import ClientError

    real = BaseClient._make_api_call

    def make_api_call(self, name, params):
        if name == operation and str(params.get("cluster", "")).endswith(cluster):
            raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "denied"}}, name)
        return real(self, name, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", make_api_call)


@pytest.mark.parametrize(
    ("operation", "cluster", "argv"),
    [
        ("ListTasks", "prod", ("--cluster", "prod", "--cluster", "quiet")),  # quiet still lists
        ("DescribeTasks", "quiet", ("--cluster", "quiet")),
    ],
)
def test_a_scan_that_could_not_read_some_tasks_is_never_a_clean_exit(
    estate, monkeypatch, operation, cluster, argv
):
    """Errors are never PASS: the quiet cluster alone passes at CRITICAL (exit 0, above),
    but when tasks in scope cannot be listed or described the report names the refused
    call and the exit status is at least 1, with one warning line on stderr (when nothing
    at all could be listed, the scan could not run: exit 2, test_cli_org and collect)."""
    _denying(monkeypatch, operation, cluster)

    code, out, err = run_cli("scan", *argv, "--fail-on", "CRITICAL", "--format", "json")

    report = json.loads(out)
    assert code == 1, err
    assert [e["call"] for e in report["errors"]] == [operation]
    assert report["summary"]["tasks"] == (1 if operation == "ListTasks" else 0)  # quiet's task
    (line,) = err.splitlines()
    assert line.startswith("fargate-audit: warning: 1 part(s) of the scope could not be read")
    assert f"{operation}: AccessDeniedException" in line


def test_exit_0_when_every_failure_is_exempted(estate, tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text(
        "exemptions:\n"
        "  - {rule: '*', workload: 'prod/*', reason: accepted for the test, expires: 2999-12-31}\n"
    )
    code, out, err = run_cli("scan", "--cluster", "prod", "--params", str(params), "--format", "json")
    assert (code, err) == (0, "")
    doc = json.loads(out)
    assert not [r for r in doc["results"] if r["status"] == "FAILED"]
    assert any(r["evidence"].get("exempted") for r in doc["results"])


def test_bad_params_file_exits_2_naming_file_and_key(estate, tmp_path):
    params = tmp_path / "bad-params.yaml"
    params.write_text("no_such_key: 1\n")
    code, out, err = run_cli("scan", "--cluster", "prod", "--params", str(params))
    assert (code, out) == (2, "")
    assert_one_error_line(err, "bad-params.yaml", "no_such_key")


BOMB = "\n".join(
    ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    + [f"a{n}: &a{n} [{', '.join([f'*a{n - 1}'] * 10)}]" for n in range(1, 9)]
    + ["secret_env_names: *a8"]
)


@pytest.mark.parametrize(
    ("name", "text", "fragment"),
    [
        ("bomb.yaml", BOMB, "more than 100000 values once its aliases are expanded"),
        ("deep.yaml", "secret_env_names: " + "[" * 5000 + "]" * 5000, "nested more than 64 levels deep"),
        (
            "deep.json",
            '{"secret_env_names": ' + "[" * 5000 + "]" * 5000 + "}",
            "nested more than 64 levels deep",
        ),
        ("recursive.yaml", "secret_env_names: &a [*a]", "nested more than 64 levels deep"),
        # each anchor 60 levels deep holding the one before it: shallow where first seen
        (
            "chained.yaml",
            "\n".join(
                [f"a0: &a0 {'[' * 60}x{']' * 60}"]
                + [f"a{n}: &a{n} {'[' * 60}*a{n - 1}{']' * 60}" for n in range(1, 40)]
                + ["secret_env_names: *a39"]
            ),
            "nested more than 64 levels deep",
        ),
    ],
)
def test_a_params_file_that_expands_too_far_is_one_error_line_at_once(tmp_path, name, text, fragment):
    """A "billion laughs" of aliases, or nesting thousands deep, is refused when read, naming
    the file: walking it took minutes, then "unexpected MemoryError" or RecursionError."""
    path = tmp_path / name
    path.write_text(text)
    code, _, err = run_cli("scan", "--params", str(path))
    assert code == 2
    assert_one_error_line(err, str(path), fragment)


def test_a_large_params_file_without_aliases_is_no_bomb(tmp_path):
    """The expansion limit is for aliases: 100,001 plain values are a params file like any."""
    path = tmp_path / "big.json"
    path.write_text(json.dumps({"approved_domains": [f"d{n}.example.com" for n in range(100_001)]}))
    from fargate_audit.core import params

    loaded = params.load_params(path, rules.load_catalog())
    assert len(loaded["approved_domains"]) == 100_001


def test_a_rule_file_nested_too_deep_is_one_problem_naming_it(tmp_path):
    own = tmp_path / "rules"
    shutil.copytree(REPO / "rules", own, ignore=shutil.ignore_patterns("__pycache__"))
    path = own / "NET-01" / "rule.yaml"
    path.write_text(path.read_text() + "\nextra: " + "[" * 3000 + "]" * 3000 + "\n")
    code, _, err = run_cli("rules", "validate", str(own))
    assert code == 2
    assert_one_error_line(err, str(path), "nested more than 64 levels deep")


def test_a_params_path_that_is_a_directory_says_so(tmp_path):
    code, _, err = run_cli("scan", "--params", str(tmp_path))
    assert code == 2
    assert_one_error_line(err, str(tmp_path), "is a directory, not a params file")


def test_missing_params_file_exits_2_with_one_line(tmp_path):
    code, _, err = run_cli("scan", "--params", str(tmp_path / "absent.yaml"))
    assert code == 2
    assert_one_error_line(err, "absent.yaml")


def test_debug_adds_the_traceback(estate, tmp_path):
    params = tmp_path / "bad.yaml"
    params.write_text("no_such_key: 1\n")
    code, _, err = run_cli("scan", "--debug", "--params", str(params))
    assert code == 2
    assert "Traceback" in err
    assert err.splitlines()[-1].startswith("fargate-audit: error: ")


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (("scan", "--format", "xml"), "--format"),
        (("scan", "--fail-on", "SEVERE"), "--fail-on"),
        (("scan", "--bogus"), "--bogus"),
        (("rules",), "rules subcommand"),
        ((), "command is required"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(argv, fragment):
    code, out, err = run_cli(*argv)
    assert (code, out) == (2, "")
    assert_one_error_line(err, fragment)


def test_version_and_help_exit_0(capsys):
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == "fargate-audit 0.1.0"
    assert cli.main(["scan", "--help"]) == 0
    assert "--fail-on" in capsys.readouterr().out


# --------------------------------------------------------------------------- progress


class FakeTty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_shown_only_for_big_scans_and_cleared():
    stream = FakeTty()
    progress = cli._StderrProgress(stream)
    progress(10, 49, "describe tasks")
    assert stream.getvalue() == ""
    progress(10, 50, "describe tasks")
    assert "describe tasks: 10/50 tasks" in stream.getvalue()
    progress.close()
    assert stream.getvalue().endswith("\r\x1b[K")


# --------------------------------------------------------------------------- installed script


def test_installed_console_script_runs_and_reports_missing_credentials_in_one_line(tmp_path):
    script = Path(sys.executable).with_name("fargate-audit")
    assert script.exists(), "install the package (pip install -e .) to get the console script"
    empty_credentials, empty_config = tmp_path / "credentials", tmp_path / "config"
    empty_credentials.write_text("")
    empty_config.write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_SHARED_CREDENTIALS_FILE=str(empty_credentials),
        AWS_CONFIG_FILE=str(empty_config),
        AWS_EC2_METADATA_DISABLED="true",
        AWS_REGION=REGION,
    )
    listing = subprocess.run([script, "rules", "list"], capture_output=True, text=True, env=env, timeout=60)
    assert listing.returncode == 0, listing.stderr
    assert "NET-01" in listing.stdout

    scan = subprocess.run([script, "scan"], capture_output=True, text=True, env=env, timeout=60)
    assert (scan.returncode, scan.stdout) == (2, "")
    assert_one_error_line(scan.stderr, "credentials")


# --------------------------------------------------------------------------- html report


def test_scan_html_and_report_from_the_saved_json_give_the_same_page(estate, tmp_path):
    page, saved, again = tmp_path / "scan.html", tmp_path / "scan.json", tmp_path / "again.html"
    code, out, err = run_cli("scan", "--format", "html", "--cluster", "prod", "--output", str(page))
    assert (code, out) == (1, ""), err
    text = page.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and "http://" not in text and "https://" not in text
    assert all(arn.rsplit("/", 1)[-1] in text for arn in estate["prod_tasks"])
    assert run_cli("scan", "--format", "json", "--cluster", "prod", "--output", str(saved))[0] == 1
    code, out, err = run_cli("report", str(saved), "--output", str(again))
    assert (code, out, err) == (0, "", "")
    strip = lambda html: html.split('"generated_at":', 1)[1].split(",", 1)[1]  # noqa: E731
    assert strip(again.read_text(encoding="utf-8")) == strip(text)


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (None, "report file not found"),
        ("{not json", "not a JSON scan report"),
        ('{"report_version": 1}', "not a valid scan report: at (top level): 'generated_at' is a required"),
        ('{"report_version": 2, "generated_at": "x", "scope": {"regions": []}, "tasks": [], "results": [],'
         ' "summary": {"tasks": 0, "skipped_tasks": 0, "by_status": {}}, "stats": {"api_calls": {},'
         ' "duration_s": 0}}', "at report_version: 1 was expected"),
        ('{"report_version": 1, "note": "\\ud800"}', "it holds a lone surrogate"),  # valid JSON, no text
    ],
)  # fmt: skip
def test_report_of_a_bad_file_is_one_error_line_and_exit_2(tmp_path, content, fragment):
    path = tmp_path / "scan.json"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    code, out, err = run_cli("report", str(path), "--output", str(tmp_path / "r.html"))
    assert (code, out) == (2, "")
    assert_one_error_line(err, str(path), fragment)
    assert not (tmp_path / "r.html").exists()


def test_an_html_or_ocsf_output_that_fails_leaves_the_previous_file(estate, tmp_path, monkeypatch):
    """Every --output is written as the JSON report is: into a temporary file beside it,
    renamed once complete."""
    from fargate_audit.cli import html

    target = tmp_path / "report.html"
    target.write_text("previous page\n")

    def failing_render(report):
        return "<html>" + "\ud800"  # fails as it is written (no UTF-8 for a lone surrogate)

    monkeypatch.setattr(html, "render", failing_render)
    code, out, err = run_cli("scan", "--format", "html", "--cluster", "quiet", "--output", str(target))

    assert (code, out) == (2, "")
    assert target.read_text() == "previous page\n" and sorted(p.name for p in tmp_path.iterdir()) == [
        "report.html"
    ]


def test_a_scan_that_finds_no_cluster_still_names_the_account_it_audited(estate):
    """scope.accounts was [] when no cluster was found: the report did not say whose
    account came out clean. The caller's account is named (one sts:GetCallerIdentity)."""
    code, out, err = run_cli("scan", "--format", "json", "--region", "us-west-2")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["scope"]["accounts"] == ["123456789012"] and doc["scope"]["clusters"] == []  # moto's
    assert doc["stats"]["api_calls"]["sts.GetCallerIdentity"] == 1
    jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text())).validate(doc)
