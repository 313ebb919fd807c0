"""End to end: ``fargate-audit scan --accounts | --accounts-file | --organization`` (interface.md,
"Organization scale") on moto, in-process.

moto keeps each account reached through ``sts:AssumeRole`` apart (its own VPCs, clusters,
roles), so the member accounts are real emulated accounts, built through assumed sessions.
moto does not evaluate a role's trust policy: the ``iam`` fixture does what IAM does on
AssumeRole (the role must exist in the target account and its trust policy's
``sts:ExternalId`` condition must match), so that a missing role, an unknown account and a
wrong ExternalId are refused as AWS refuses them. It also plays an SCP that denies every
call in one region.

The caller is moto's default account 123456789012, the organization's management account.
Accounts: A (two tasks in eu-west-1, one in us-east-1) and B (one task in eu-west-1) carry
the member role; C has none (no role, or not an account at all: AccessDenied either way).
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import boto3
import jsonschema
import pytest
from botocore.client import BaseClient
from botocore.exceptions import ClientError
from fargate_audit.cli import commands as cli
from fargate_audit.edge import aws
from fargate_audit.local import estate
from moto import mock_aws
from moto.iam.models import iam_backends
from support.wire import ExpiredTokens

REGION, OTHER_REGION, DENIED_REGION = "eu-west-1", "us-east-1", "ap-south-1"
CALLER = "123456789012"
A, B, C = "111111111111", "222222222222", "333333333333"
ROLE = "fargate-audit-member"
EXTERNAL_ID = "org-ext-5b1e"
REPO = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((REPO / "layers/fargate_audit/schemas/scan-report.schema.json").read_text())


def _trust(external_id: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"AWS": f"arn:aws:iam::{CALLER}:root"},
                    "Action": "sts:AssumeRole",
                    "Condition": {"StringEquals": {"sts:ExternalId": external_id}},
                }
            ],
        }
    )


class _Iam:
    """What IAM and SCPs decide, played over moto: see the module's docstring."""

    def __init__(self) -> None:
        self.enforce = False
        self.assume_calls: list[dict] = []
        self.denied_region: str | None = None
        self.disabled_region: str | None = None  # an opt-in region the accounts have not enabled
        self.deny_organizations = False

    def refuse(self, code: str, message: str, operation: str):
        raise ClientError({"Error": {"Code": code, "Message": message}}, operation)

    def check(self, client, operation: str, params: dict) -> None:
        if not self.enforce:
            return
        service = client.meta.service_model.service_name
        if operation == "AssumeRole":
            self.assume_calls.append(dict(params) | {"sts_region": client.meta.region_name})
            self._check_trust(params)
        elif service == "organizations" and self.deny_organizations:
            self.refuse(
                "AccessDeniedException", "You don't have permissions to access this resource.", operation
            )
        elif self.disabled_region and client.meta.region_name == self.disabled_region and service != "sts":
            self.refuse(
                "UnrecognizedClientException",
                "The security token included in the request is invalid.",
                operation,
            )
        elif self.denied_region and client.meta.region_name == self.denied_region and service != "sts":
            self.refuse(
                "AccessDeniedException",
                f"User is not authorized to perform: {service}:{operation} with an explicit deny "
                "in a service control policy",
                operation,
            )

    def _check_trust(self, params: dict) -> None:
        arn = params["RoleArn"]
        account, name = arn.split(":")[4], arn.rsplit("/", 1)[-1]
        denied = f"User: arn:aws:sts::{CALLER}:assumed-role/x is not authorized to perform: sts:AssumeRole"
        try:
            role = iam_backends[account]["aws"].get_role(name)
        except Exception:
            self.refuse("AccessDenied", denied + f" on resource: {arn}", "AssumeRole")
        trust = json.loads(role.assume_role_policy_document)
        wanted = {
            s.get("Condition", {}).get("StringEquals", {}).get("sts:ExternalId") for s in trust["Statement"]
        }
        if params.get("ExternalId") not in wanted:
            self.refuse("AccessDenied", denied + f" on resource: {arn}", "AssumeRole")


@pytest.fixture(scope="module")
def world():
    with pytest.MonkeyPatch.context() as patch:
        for name, value in {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
        }.items():
            patch.setenv(name, value)
        for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_SESSION_TOKEN", "NO_COLOR"):
            patch.delenv(name, raising=False)
        iam = _Iam()
        real = BaseClient._make_api_call

        def spy(self, operation_name, api_params):
            iam.check(self, operation_name, api_params)
            return real(self, operation_name, api_params)

        patch.setattr(BaseClient, "_make_api_call", spy)
        with mock_aws():
            source = aws.Session(region_name=REGION)
            tasks: dict[tuple[str, str], list[str]] = {}
            for account, places in ((A, (REGION, REGION, OTHER_REGION)), (B, (REGION,))):
                session = aws.assume_role_session(source, f"arn:aws:iam::{account}:role/builder")
                session.client("iam").create_role(RoleName=ROLE, AssumeRolePolicyDocument=_trust(EXTERNAL_ID))
                for region in sorted(set(places)):
                    tasks[(account, region)] = _estate(session, region, places.count(region))
            org = _organization(source)
            iam.enforce = True
            yield iam, tasks, org


def _organization(source) -> dict:
    """The caller's organization: the management account, X (with the member role, in the
    OU ``workloads``) and Y (no role)."""
    client = boto3.client("organizations", region_name=OTHER_REGION)
    client.create_organization(FeatureSet="ALL")
    root = client.list_roots()["Roots"][0]["Id"]
    ou = client.create_organizational_unit(ParentId=root, Name="workloads")["OrganizationalUnit"]["Id"]
    x, y = (
        client.create_account(AccountName=name, Email=f"{name}@example.com")["CreateAccountStatus"][
            "AccountId"
        ]
        for name in ("x", "y")
    )
    client.move_account(AccountId=x, SourceParentId=root, DestinationParentId=ou)
    session = aws.assume_role_session(source, f"arn:aws:iam::{x}:role/builder")
    session.client("iam").create_role(RoleName=ROLE, AssumeRolePolicyDocument=_trust(EXTERNAL_ID))
    return {"ou": ou, "with_role": x, "without_role": y}


def _estate(session, region: str, count: int) -> list[str]:
    b = estate._Builder(session, region)
    vpc = b.vpc("app", "10.70.0.0/16")
    subnet = b.subnet("app-a", vpc, "10.70.1.0/24", "a")
    sg = b.security_group(
        "app", "ssh", "open ssh", ingress=[estate._ports("tcp", 22, 22, cidrs4=["0.0.0.0/0"])]
    )
    b.task_definition("api", [estate._container("api", "public.ecr.aws/acme/api:1.0")])
    b.cluster("apps", "enabled")
    return b.run_tasks("apps", "api", [subnet], [sg], count, "1.4.0", service="api")


@pytest.fixture
def iam(world):
    iam = world[0]
    iam.assume_calls.clear()
    yield iam
    iam.denied_region, iam.disabled_region, iam.deny_organizations = None, None, False


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(["scan", *argv], stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def error_line(err: str) -> str:
    lines = err.splitlines()
    assert lines and lines[-1].startswith("fargate-audit: error: "), err
    assert "Traceback" not in err and sum(line.startswith("fargate-audit: error:") for line in lines) == 1
    return lines[-1]


def role_arn(account: str) -> str:
    return f"arn:aws:iam::{account}:role/{ROLE}"


# --------------------------------------------------------------------------- scanned


def test_accounts_in_two_regions_make_one_report_with_a_scope_per_account_and_region(world, iam):
    tasks = world[1]
    code, out, err = run_cli(
        "--accounts", f"{A},{B}", "--accounts", A, "--region", REGION, "--region", OTHER_REGION,
        "--external-id", EXTERNAL_ID, "--format", "json", "--jobs", "2",
    )  # fmt: skip

    assert code == 1, err  # the open SSH groups fail NET-01
    report = json.loads(out)
    jsonschema.validate(report, SCHEMA)
    expected = {arn for arns in tasks.values() for arn in arns}
    assert {t["task_arn"] for t in report["tasks"]} == expected
    for task in report["tasks"]:
        assert (task["account_id"], task["region"]) in tasks and task["task_arn"] in tasks[
            (task["account_id"], task["region"])
        ]
    assert [t["task_arn"] for t in report["tasks"]] == sorted(expected)
    keys = [(r["task_arn"], r["rule_id"]) for r in report["results"]]
    assert keys == sorted(keys) and {k[0] for k in keys} == expected
    scopes = report["summary"]["scopes"]
    assert [(s["account_id"], s["region"], s["tasks"], s["error"]) for s in scopes] == [
        (A, REGION, 2, None),  # eu-west-1 before us-east-1: sorted by account, then region
        (A, OTHER_REGION, 1, None),
        (B, REGION, 1, None),
        (B, OTHER_REGION, 0, None),
    ]
    by_rule_failed = sum(s["by_status"]["FAILED"] for s in scopes)
    assert by_rule_failed == report["summary"]["by_status"]["FAILED"] > 0
    assert report["scope"]["accounts"] == [A, B]
    # the duplicate is audited once; one AssumeRole per account, with the ExternalId
    assert sorted(c["RoleArn"] for c in iam.assume_calls) == [role_arn(A), role_arn(B)]
    assert all(c["ExternalId"] == EXTERNAL_ID for c in iam.assume_calls)
    assert report["stats"]["api_calls"]["sts.AssumeRole"] == 2
    # not a terminal: one progress line per account
    progress = err.splitlines()
    assert sorted(line.split()[2] for line in progress) == [A, B], err
    assert EXTERNAL_ID not in out + err


def test_given_clusters_are_looked_for_where_they_can_be_and_missing_only_when_found_nowhere(world, iam):
    """--cluster NAME: B has no "apps" in us-east-1, which is no error while others have it;
    --cluster ARN: only the account and region it names are read (the other scopes make
    no ECS call); a name found in no account is exit 2, as for one account; one found
    beside a cluster ARN of an account not scanned is one error, exit 1."""
    tasks = world[1]
    scope = (
        "--accounts",
        f"{A},{B}",
        "--region",
        REGION,
        "--region",
        OTHER_REGION,
        "--external-id",
        EXTERNAL_ID,
    )
    strict = ("--format", "json", "--fail-on", "CRITICAL")
    code, out, err = run_cli(*scope, "--cluster", "apps", *strict)
    report = json.loads(out)
    assert (code, report["errors"]) == (0, []), err
    assert {t["task_arn"] for t in report["tasks"]} == {a for arns in tasks.values() for a in arns}

    arn = f"arn:aws:ecs:{OTHER_REGION}:{A}:cluster/apps"
    code, out, err = run_cli(*scope, "--cluster", arn, *strict)
    report = json.loads(out)
    assert (code, report["errors"]) == (0, []), err
    assert [t["task_arn"] for t in report["tasks"]] == tasks[(A, OTHER_REGION)]
    assert report["stats"]["api_calls"]["ecs.DescribeClusters"] == 1

    # found in no account and region: as for a single account (interface.md), exit 2
    code, out, err = run_cli(*scope, "--cluster", "nosuch", *strict)
    assert (code, out) == (2, "")
    assert "nosuch" in error_line(err) and "no cluster in scope could be listed" in error_line(err)
    elsewhere = f"arn:aws:ecs:{OTHER_REGION}:{C}:cluster/apps"  # an account not scanned
    code, out, err = run_cli(*scope, "--cluster", elsewhere, "--cluster", "apps", *strict)
    report = json.loads(out)
    assert code == 1 and [e["message"] for e in report["errors"]] == [
        f"cluster {elsewhere} is not in the accounts and regions scanned"
    ]


def test_a_cluster_arn_reads_its_own_region_for_its_own_account_even_when_not_asked_for(world, iam):
    """An ARN is read in the region it names, which joins the scan (as for one account):
    for the account it names only, and only that cluster is looked up there."""
    tasks = world[1]
    arn = f"arn:aws:ecs:{OTHER_REGION}:{A}:cluster/apps"
    scope = (
        "--accounts",
        f"{A},{B}",
        "--external-id",
        EXTERNAL_ID,
        "--format",
        "json",
        "--fail-on",
        "CRITICAL",
    )
    for regions in (("--region", REGION), ()):  # a region asked for, or only the session's
        code, out, err = run_cli(*scope, *regions, "--cluster", arn)
        report = json.loads(out)
        assert (code, report["errors"]) == (0, []), err
        assert [t["task_arn"] for t in report["tasks"]] == tasks[(A, OTHER_REGION)]
        scopes = {(s["account_id"], s["region"]) for s in report["summary"]["scopes"]}
        assert (A, OTHER_REGION) in scopes and (B, OTHER_REGION) not in scopes
    # only an ARN of an account not scanned: no scope at all, one error naming it, exit 2
    elsewhere = f"arn:aws:ecs:{OTHER_REGION}:{C}:cluster/apps"
    code, out, err = run_cli(*scope, "--cluster", elsewhere)
    assert (code, out) == (2, "") and "Traceback" not in err
    assert f"cluster {elsewhere} is not in the accounts and regions scanned" in error_line(err)
    # beside a name: the name is looked up in the regions asked for only
    code, out, err = run_cli(*scope, "--region", REGION, "--cluster", arn, "--cluster", "apps")
    report = json.loads(out)
    assert code == 0, err
    assert {t["task_arn"] for t in report["tasks"]} == {
        *tasks[(A, OTHER_REGION)],
        *(a for (account, region), arns in tasks.items() if region == REGION for a in arns),
    }


def test_the_table_has_a_row_per_account_and_region(world, iam):
    code, out, err = run_cli("--accounts", f"{A},{C}", "--external-id", EXTERNAL_ID, "--fail-on", "CRITICAL")

    assert code == 1, err  # nothing CRITICAL, but C could not be scanned
    rows = {
        tuple(line.split()[:2]): line
        for line in out.splitlines()
        if line.startswith(f"  {A}") or line.startswith(f"  {C}")
    }
    assert rows.keys() == {(A, REGION), (C, REGION)}, out
    assert rows[(A, REGION)].split()[2] == "2"
    assert "sts:AssumeRole: AccessDenied:" in rows[(C, REGION)] and role_arn(C) in rows[(C, REGION)]


def test_single_account_scans_have_no_scopes(world, iam):
    code, out, err = run_cli("--format", "json")
    assert code in (0, 1), err
    assert "scopes" not in json.loads(out)["summary"] and not iam.assume_calls


# --------------------------------------------------------------------------- faults


def test_a_refused_account_is_listed_with_its_error_and_the_others_reported(world, iam):
    tasks = world[1]
    code, out, err = run_cli(
        "--accounts", f"{C},{A}", "--external-id", EXTERNAL_ID, "--format", "json", "--fail-on", "CRITICAL"
    )

    assert code == 1, err  # only because of C: A has no CRITICAL failure
    report = json.loads(out)
    jsonschema.validate(report, SCHEMA)
    assert {t["task_arn"] for t in report["tasks"]} == set(tasks[(A, REGION)])
    scopes = {s["account_id"]: s for s in report["summary"]["scopes"]}
    assert scopes[A]["error"] is None and scopes[A]["tasks"] == 2
    assert scopes[C]["error"].startswith("sts:AssumeRole: AccessDenied: ")
    assert scopes[C]["error"].endswith(f"({role_arn(C)})")
    # interface.md's six keys, always: what the refused scope saw is nothing
    assert (scopes[C]["tasks"], scopes[C]["skipped_tasks"], set(scopes[C]["by_status"].values())) == (
        0,
        0,
        {0},
    )
    assert f"account {C}" in err and "AccessDenied" in err
    code, _, err = run_cli("--accounts", A, "--external-id", EXTERNAL_ID, "--fail-on", "CRITICAL")
    assert code == 0, err  # the same account alone: nothing to exit 1 for


def test_a_wrong_external_id_refuses_every_account_exit_2(world, iam):
    code, out, err = run_cli("--accounts", f"{A},{B}", "--external-id", "not-the-right-one")

    assert code == 2 and out == ""
    line = error_line(err)
    assert "no account and region could be scanned (2 tried)" in line
    assert "sts:AssumeRole: AccessDenied" in line and "not-the-right-one" not in err
    assert len(iam.assume_calls) == 2


def test_a_role_name_that_no_account_has_is_refused(world, iam):
    code, _, err = run_cli("--accounts", A, "--role-name", "other-role", "--external-id", EXTERNAL_ID)
    assert code == 2
    assert "arn:aws:iam::111111111111:role/other-role" in error_line(err)


def test_a_region_that_refuses_every_call_is_listed_and_the_others_reported(world, iam):
    iam.denied_region = DENIED_REGION
    code, out, err = run_cli(
        "--accounts", A, "--external-id", EXTERNAL_ID, "--region", REGION, "--region", DENIED_REGION,
        "--format", "json", "--fail-on", "CRITICAL",
    )  # fmt: skip

    assert code == 1, err
    scopes = {s["region"]: s for s in json.loads(out)["summary"]["scopes"]}
    assert scopes[REGION]["error"] is None and scopes[REGION]["tasks"] == 2
    # one line naming the refused call as interface.md writes it (service:Call: Code: ...)
    assert scopes[DENIED_REGION]["error"].startswith("ecs:ListClusters: AccessDeniedException: ")
    assert len(iam.assume_calls) == 1  # one AssumeRole for the account, whatever its regions


def test_a_region_that_rejects_the_credentials_names_the_refused_call_too(world, iam):
    """An opt-in region the account has not enabled rejects the credentials
    (UnrecognizedClientException): its scope error names the call as interface.md writes it,
    not "AWS rejected the credentials: ListClusters: ...", the single-account scan's exit line."""
    iam.disabled_region = DENIED_REGION
    code, out, err = run_cli(
        "--accounts", A, "--external-id", EXTERNAL_ID, "--region", REGION, "--region", DENIED_REGION,
        "--format", "json",
    )  # fmt: skip

    assert code == 1, err
    scopes = {s["region"]: s for s in json.loads(out)["summary"]["scopes"]}
    assert scopes[REGION]["error"] is None
    assert scopes[DENIED_REGION]["error"].startswith("ecs:ListClusters: UnrecognizedClientException: ")


def test_without_a_configured_region_the_role_is_assumed_at_the_first_regions_sts(world, iam, monkeypatch):
    """No AWS_REGION nor profile region, only --region: AssumeRole went to STS's global
    endpoint, whose session tokens regions not enabled by default (opt-in) refuse."""
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    code, out, err = run_cli(
        "--accounts", A, "--external-id", EXTERNAL_ID, "--region", OTHER_REGION, "--format", "json"
    )  # fmt: skip

    assert code in (0, 1), err
    assert [c["sts_region"] for c in iam.assume_calls] == [OTHER_REGION]
    assert json.loads(out)["summary"]["scopes"][0]["error"] is None


def test_a_part_of_an_account_that_could_not_be_read_is_reported_and_never_a_clean_exit(
    world, iam, monkeypatch
):
    """A's clusters list but its tasks cannot be described: A's scope has no error (it was
    scanned), the report lists the refused call, and the exit status is at least 1 even
    though nothing reaches --fail-on CRITICAL."""
    denied = ExpiredTokens(monkeypatch, A, "ecs.DescribeTasks", times=100, code="AccessDeniedException")
    code, out, err = run_cli(
        "--accounts", f"{A},{B}", "--external-id", EXTERNAL_ID, "--format", "json", "--fail-on", "CRITICAL"
    )

    assert code == 1, err
    report = json.loads(out)
    assert denied.answered >= 1
    assert [(e["call"], e["message"].split(":")[1].strip()) for e in report["errors"]] == [
        ("DescribeTasks", "AccessDeniedException")
    ]
    scopes = {s["account_id"]: s for s in report["summary"]["scopes"]}
    assert scopes[A]["error"] is None and scopes[A]["tasks"] == 0
    assert scopes[B]["error"] is None and scopes[B]["tasks"] == 1


def test_a_call_answered_expired_token_renews_the_role_once_and_the_scan_goes_on(world, iam, monkeypatch):
    tasks = world[1]
    expired = ExpiredTokens(monkeypatch, A, "ecs.ListClusters")  # before the credentials' local expiry
    code, out, err = run_cli(
        "--accounts", f"{A},{B}", "--external-id", EXTERNAL_ID, "--format", "json", "--jobs", "2"
    )

    assert code == 1, err  # NET-01, as without the expiry
    report = json.loads(out)
    assert [(s["account_id"], s["error"]) for s in report["summary"]["scopes"]] == [(A, None), (B, None)]
    assert {t["task_arn"] for t in report["tasks"]} == set(tasks[(A, REGION)] + tasks[(B, REGION)])
    assert expired.answered == 1
    # A's role assumed twice (the renewal the call was retried with), B's once
    assert sorted(c["RoleArn"] for c in iam.assume_calls) == [role_arn(A), role_arn(A), role_arn(B)]
    assert report["stats"]["api_calls"]["sts.AssumeRole"] == 3


@pytest.mark.parametrize("call", ["ecs.ListClusters", "ecs.DescribeTasks"])
def test_a_call_answered_expired_token_twice_is_the_scope_error_as_before(world, iam, monkeypatch, call):
    expired = ExpiredTokens(monkeypatch, A, call, times=2)
    code, out, err = run_cli(
        "--accounts", f"{A},{B}", "--external-id", EXTERNAL_ID, "--format", "json", "--fail-on", "CRITICAL"
    )

    assert code == 1, err  # only because A could not be scanned
    assert expired.answered == 2
    assert sorted(c["RoleArn"] for c in iam.assume_calls) == [role_arn(A), role_arn(A), role_arn(B)]
    scopes = {s["account_id"]: s for s in json.loads(out)["summary"]["scopes"]}
    # the refused call as interface.md writes a scope's error (service:Call: Code: ...),
    # at the region's first call or later in the scan
    assert scopes[A]["error"].startswith(f"{call.replace('.', ':')}: ExpiredTokenException")
    assert scopes[B]["error"] is None and scopes[B]["tasks"] == 1


def test_an_ec2_read_answered_request_expired_twice_is_a_failed_fact_as_before(world, iam, monkeypatch):
    expired = ExpiredTokens(monkeypatch, A, "ec2.DescribeNetworkInterfaces", times=2)
    code, out, err = run_cli("--accounts", A, "--external-id", EXTERNAL_ID, "--format", "json")

    assert expired.answered == 2 and expired.code == "RequestExpired"
    assert [c["RoleArn"] for c in iam.assume_calls] == [role_arn(A), role_arn(A)]  # one renewal, no more
    assert code == 1, err
    report = json.loads(out)
    # the facts read through the ENI are ERROR, naming the call and AWS's code (as before
    # renewals: RequestExpired is a failed read, not rejected credentials)
    errors = {r["evidence"]["error"] for r in report["results"] if r["status"] == "ERROR"}
    assert errors and all("DescribeNetworkInterfaces: RequestExpired: " in e for e in errors)
    # the other calls went on with the renewed credentials: the tasks are reported
    assert len(report["tasks"]) == 2 and report["summary"]["scopes"][0]["error"] is None


def test_a_malformed_accounts_file_names_the_line_and_calls_nothing(world, iam, tmp_path):
    path = tmp_path / "accounts.txt"
    path.write_text(f"# prod\n{A}\n{B[:-1]}x\n", encoding="utf-8")
    code, out, err = run_cli("--accounts-file", str(path))
    assert code == 2 and out == ""
    assert err == f"fargate-audit: error: {path}:3: '{B[:-1]}x' is not a 12-digit account id\n"
    assert not iam.assume_calls


def test_an_accounts_file_with_duplicates_scans_each_account_once(world, iam, tmp_path):
    path = tmp_path / "accounts.txt"
    path.write_text(f"{A}\n\n{A}  # again\n{B}\n", encoding="utf-8")
    code, out, err = run_cli("--accounts-file", str(path), "--external-id", EXTERNAL_ID, "--format", "json")
    assert code == 1, err
    scopes = json.loads(out)["summary"]["scopes"]
    assert [s["account_id"] for s in scopes] == [A, B]
    assert sorted(c["RoleArn"] for c in iam.assume_calls) == [role_arn(A), role_arn(B)]


# --------------------------------------------------------------------------- organization


def test_organization_scans_every_active_account(world, iam):
    org = world[2]
    code, out, err = run_cli("--organization", "--external-id", EXTERNAL_ID, "--format", "json")

    assert code == 1, err  # two accounts without the role
    scopes = {s["account_id"]: s for s in json.loads(out)["summary"]["scopes"]}
    assert scopes.keys() == {CALLER, org["with_role"], org["without_role"]}
    assert scopes[org["with_role"]]["error"] is None and scopes[org["with_role"]]["tasks"] == 0
    for refused in (CALLER, org["without_role"]):  # the management account too: no member role there
        assert scopes[refused]["error"].startswith("sts:AssumeRole: AccessDenied")
    assert sorted(c["RoleArn"] for c in iam.assume_calls) == sorted(map(role_arn, scopes))


def test_organization_under_an_ou_scans_only_its_accounts(world, iam):
    org = world[2]
    code, out, err = run_cli(
        "--organization", "--ou", org["ou"], "--external-id", EXTERNAL_ID, "--format", "json"
    )
    assert code == 0, err
    scopes = json.loads(out)["summary"]["scopes"]
    assert [(s["account_id"], s["error"]) for s in scopes] == [(org["with_role"], None)]


def test_organization_without_permission_is_one_error_exit_2(world, iam):
    iam.deny_organizations = True
    code, out, err = run_cli("--organization")
    assert code == 2 and out == ""
    assert err.count("\n") == 1
    line = error_line(err)
    assert "organizations:ListAccounts: AccessDeniedException" in line and "management account" in line
    assert not iam.assume_calls


def test_an_ou_that_does_not_exist_is_one_error_without_the_permission_hint(world, iam):
    code, out, err = run_cli("--organization", "--ou", "ou-abcd-12345678")
    assert code == 2 and out == ""
    line = error_line(err)
    assert "organizations:ListAccountsForParent: ParentNotFoundException" in line
    assert "management account" not in line  # the caller may list accounts: the OU is wrong


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (("--accounts", A, "--role-arn", role_arn(A)), "not allowed with argument"),
        (("--accounts", A, "--organization"), "not allowed with argument"),
        (("--accounts-file", "x", "--accounts", A), "not allowed with argument"),
        (("--ou", "ou-abcd-12345678"), "--ou needs --organization"),
        (("--role-name", ROLE), "--role-name needs --accounts"),
        (("--jobs", "2"), "--jobs needs --accounts"),
        (("--accounts", A, "--jobs", "0"), "--jobs: 0 is not between 1 and 64"),
        (("--accounts", "12345"), "--accounts: '12345' is not a 12-digit account id"),
        (("--accounts", A, "--role-name", "bad name"), "is not an IAM role name"),
        (("--organization", "--ou", "nope"), "--ou: 'nope' is not an organizational unit"),
        (("--accounts", ""), "no account to scan (--accounts names none)"),
        (("--accounts", ",,,"), "no account to scan (--accounts names none)"),
    ],
)
def test_bad_organization_arguments_are_one_line_exit_2(world, iam, argv, fragment):
    code, out, err = run_cli(*argv)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and fragment in error_line(err), err
    assert not iam.assume_calls


def test_on_a_terminal_progress_is_one_bar_rewritten_in_place(world, iam, monkeypatch):
    """issue 10: a progress bar on a terminal (one line per account otherwise); an account
    that could not be scanned is printed above the bar; the bar is wiped at the end."""
    monkeypatch.setattr(cli, "_isatty", lambda stream: True)
    code, out, err = run_cli("--accounts", f"{A},{C}", "--external-id", EXTERNAL_ID, "--format", "json")
    assert code == 1 and json.loads(out)["summary"]["scopes"]
    assert err.count("\r\033[Kaccounts [") == 2 and err.endswith("\r\033[K")
    assert (
        "accounts [############............] 1/2" in err and "accounts [########################] 2/2" in err
    )
    (refused,) = [line for line in err.split("\r\033[K") if line.startswith(f"fargate-audit: account {C}")]
    assert "sts:AssumeRole: AccessDenied" in refused and refused.endswith("\n")


def test_jobs_bounds_how_many_accounts_are_scanned_at_once(world, iam, monkeypatch):
    import threading
    import time

    from fargate_audit.app import scan as scan_mod

    assume = scan_mod._assume
    lock, running, peak = threading.Lock(), [0], [0]

    def counted(sessions, account_id):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.2)  # long enough for the pool's other workers to start theirs
        try:
            return assume(sessions, account_id)
        finally:
            with lock:
                running[0] -= 1

    monkeypatch.setattr(scan_mod, "_assume", counted)
    for jobs, expected in (("1", 1), ("2", 2)):
        peak[0] = 0
        code, _, err = run_cli("--accounts", f"{A},{B},{C}", "--external-id", EXTERNAL_ID, "--jobs", jobs)
        assert code == 1, err  # C has no role
        assert peak[0] == expected, (jobs, peak[0])
