"""Security: environment values never leave the normaliser, and cross-account reads go
through a role assumed with an ExternalId.

Two canaries: ``CANARY_DEFINITION`` is the value of ``DB_PASSWORD`` in the ``web`` task
definition; ``CANARY_OVERRIDE`` the value of ``API_TOKEN`` in an event's
``overrides.containerOverrides[].environment``. Each scenario drives one output and the
suite's leak check (conftest ``report``) searches every output for both: the Powertools
logs and metrics (stdout), Python logging, every handler outcome, every DynamoDB item,
every Security Hub finding, every queue's messages, and the CLI's outputs and files. Each
scenario also shows that the output is not vacuous: the variable NAMES are there (the
values were read, to decide CFG-02), only the values are not.
"""

from __future__ import annotations

import io
import json

import pytest
from botocore.client import BaseClient
from botocore.exceptions import ClientError
from fargate_audit.cli import commands as cli
from fargate_audit.edge import aws
from fargate_audit.local import estate
from fault_harness import (
    ACCOUNT,
    CANARY_OVERRIDE,
    REGION,
    config_event,
    scheduled_event,
    sqs_record,
    sweep_body,
)
from reliability import scenario
from support.world import load_app

SECRETS = {"API_TOKEN": CANARY_OVERRIDE}
LOGS = scenario(
    "Canaries vs the Powertools logs and metrics of all four functions",
    "security",
    "no environment value in any log line or metric (stdout, Python logging)",
)
TABLE = scenario(
    "Canaries vs every DynamoDB item",
    "security",
    "postures, history and findings keep variable names only (CFG-02 evidence)",
)
FINDINGS = scenario(
    "Canaries vs every Security Hub finding",
    "security",
    "CFG-02 FAILED naming DB_PASSWORD and API_TOKEN; no value",
)
DEAD_LETTER = scenario(
    "Canaries vs the events DLQ (a malformed event carrying environment values)",
    "security",
    "dead letter keeps the variable names, every value redacted",
)
FAILED_EVENT = scenario(
    "Canaries vs a task event that fails (DynamoDB throttled past the SDK's retries)",
    "security",
    "raised for Lambda's retries, logged by event id and error code, counted (FailedEvents); "
    "no OnFailure destination or rule dead-letter queue to keep the raw event",
)
CLI_SCAN = scenario(
    "Canaries vs fargate-audit scan (table, json, asff, --output report)",
    "security",
    "no environment value in any format or file; exit 1 (FAILED results)",
)
CLI_TABLE = scenario(
    "Canaries vs fargate-audit history and findings",
    "security",
    "no environment value in either, table or JSON",
)
CLI_INVOKE = scenario(
    "Canaries vs fargate-audit invoke",
    "security",
    "no environment value in the printed result or the handler's logs",
)
CROSS_ACCOUNT = scenario(
    "Cross-account scan through --role-arn with --external-id",
    "security",
    "sts:AssumeRole (session fargate-audit, ExternalId) then the target account's tasks only",
)
ROLE_REFUSED = scenario(
    "Cross-account scan whose AssumeRole is refused",
    "security",
    "one error line naming the role and AssumeRole; exit 2; nothing scanned",
)


def _cli(run, *args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(list(args), stdout=out, stderr=err)
    run.texts += [out.getvalue(), err.getvalue()]
    return code, out.getvalue(), err.getvalue()


def _audit_with_secrets(run):
    web = run.world.web[0]
    outcome = run.task_events(run.running(web, override_env=SECRETS))
    assert outcome["status"] == "audited"
    return web


def _names(posture: dict) -> set[tuple[str, str, bool]]:
    return {(e["name"], e["source"], e["trivial_value"]) for e in posture["environment"]}


def test_logs_and_metrics_of_every_function(run, report, capsys, monkeypatch):
    world = run.world
    monkeypatch.setenv("SWEEP_QUEUE_URL", world.sweep_queue)  # the planner's, from the template
    context = run.context(300)
    handlers = {
        folder: load_app(folder, f"faults_app_{folder}")
        for folder in ("task_events", "config_events", "sweep_planner", "sweep_worker")
    }
    malformed = run.running(world.web[1], override_env=SECRETS)
    malformed["detail"]["version"] = "seven"

    handlers["task_events"](run.running(world.web[0], override_env=SECRETS), context)
    handlers["task_events"](malformed, context)
    handlers["config_events"](config_event(world), context)
    handlers["sweep_planner"](scheduled_event(), context)
    handlers["sweep_worker"]({"Records": [sqs_record("s-1", sweep_body(world, "prod-web"))]}, context)
    run.changed()

    printed = capsys.readouterr()
    run.texts += [printed.out, printed.err]
    lines = [json.loads(line) for line in printed.out.splitlines() if line.startswith("{")]
    messages = {line.get("message") for line in lines}
    assert {
        "task event audited",
        "malformed event rejected",
        "config event audited",
        "sweep planned",
        "cluster swept",
    } <= messages
    assert any("_aws" in line for line in lines)  # EMF metrics were emitted too
    report(LOGS, run.tasks_lost(running=world.web) + run.findings_lost())


def test_every_table_item(run, report):
    web = _audit_with_secrets(run)
    names = _names(run.latest(web)["posture"])
    run.sweep_worker([sqs_record("s-1", sweep_body(run.world, "prod-web"))])

    assert {("DB_PASSWORD", "definition", False), ("API_TOKEN", "override", False)} <= names
    kinds = {item["pk"].split("#", 1)[0] for item in run.table_items()}
    assert kinds >= {"TASK", "DEP", "WL"}  # postures + history, dependency index, finding states
    report(TABLE, run.tasks_lost(running=run.world.web) + run.findings_lost())


def test_every_security_hub_finding(run, report):
    _audit_with_secrets(run)

    (cfg02,) = [f for f in run.findings().values() if f["Id"].endswith("/CFG-02")]
    assert cfg02["Compliance"]["Status"] == "FAILED"
    text = json.dumps(cfg02)
    assert "DB_PASSWORD" in text and "API_TOKEN" in text
    report(FINDINGS, run.findings_lost())


def test_the_events_dead_letter_queue(run, report):
    event = run.running(run.world.web[0], override_env=SECRETS)
    event["detail"]["group"] = ""  # malformed: a group is 1 to 255 characters

    outcome = run.task_events(event)

    assert outcome["dead_lettered"] is True
    (letter,) = run.dead_letters()
    overrides = letter["event"]["detail"]["overrides"]["containerOverrides"]
    assert overrides[-1]["environment"] == [{"name": "API_TOKEN", "value": "(redacted)"}]
    report(DEAD_LETTER)


def test_a_failing_task_event_is_never_kept_raw(run, report):
    """Lambda's failure record and an EventBridge rule's dead-letter queue store the raw
    event, overrides and all: the task events function and its rules have neither; what
    remains of a failure is one log line and a metric, neither quoting the event."""
    from fargate_audit.cli.template import load_template

    event = run.running(run.world.web[0], override_env=SECRETS)
    run.faults.fail(
        "dynamodb",
        "TransactWriteItems",
        "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
        400,
    )

    with pytest.raises(ClientError):
        run.task_events(event)

    assert run.spy.metrics["FailedEvents"] == 1
    (line,) = [entry for entry in run.spy.lines("error") if entry[1].startswith("event processing failed")]
    assert line[2] == {"error": "ProvisionedThroughputExceededException", "event_id": event["id"]}
    assert run.dead_letters() == []
    resources = load_template()["Resources"]
    task_function = resources["TaskEventsFunction"]["Properties"]
    assert "DestinationConfig" not in task_function["EventInvokeConfig"]
    assert "DeadLetterConfig" not in task_function["Events"]["TaskStateChange"]["Properties"]
    assert all(
        "DeadLetterConfig" not in target
        for target in resources["TaskEventsMemberRule"]["Properties"]["Targets"]
    )
    report(FAILED_EVENT)


def test_cli_scan_in_every_format(run, report, tmp_path):
    path = tmp_path / "report.json"
    outputs = {}
    for fmt in ("table", "json", "asff"):
        code, out, err = _cli(run, "scan", "--format", fmt)
        assert code == 1 and err == "", err
        outputs[fmt] = out
    code, _, _ = _cli(run, "scan", "--format", "json", "--output", str(path))
    run.texts.append(path.read_text(encoding="utf-8"))

    assert code == 1 and "CFG-02" in outputs["table"]
    assert "DB_PASSWORD" in outputs["json"] and "DB_PASSWORD" in outputs["asff"]
    report(CLI_SCAN)


def test_cli_history_and_findings(run, report):
    web = _audit_with_secrets(run)

    for args in (
        ("history", web.arn),
        ("history", web.arn, "--format", "json"),
        ("findings",),
        ("findings", "--format", "json"),
    ):
        code, out, err = _cli(run, *args)
        assert code == 0 and out and err == "", (args, err)
    assert "CFG-02" in run.texts[-2]
    report(CLI_TABLE, run.tasks_lost(running=[web]) + run.findings_lost())


def test_cli_invoke(run, report, tmp_path):
    event = run.running(run.world.web[0], override_env=SECRETS)
    path = tmp_path / "event.json"
    path.write_text(json.dumps(event), encoding="utf-8")

    code, out, err = _cli(run, "invoke", "task_events", str(path))

    assert code == 0, err
    result = json.loads(out)
    assert result["status"] == "audited" and result["task_arn"] == run.world.web[0].arn
    assert '"AuditedTasks"' in err  # the handler's metrics (its logs: to the Logger's stream)
    run.changed()
    report(CLI_INVOKE, run.tasks_lost(running=[run.world.web[0]]) + run.findings_lost())


TARGET_ACCOUNT = "111122223333"
TARGET_ROLE = f"arn:aws:iam::{TARGET_ACCOUNT}:role/fargate-audit-reader"
EXTERNAL_ID = "fargate-audit-7f3c2a1b"


@pytest.fixture
def assume_role_calls(monkeypatch):
    """Every AssumeRole call (its parameters), and an optional refusal."""
    calls: list[dict] = []
    refuse: list[bool] = [False]
    real = BaseClient._make_api_call

    def spy(self, operation_name, api_params):
        if operation_name == "AssumeRole":
            calls.append(dict(api_params))
            if refuse[0]:
                error = {
                    "Error": {"Code": "AccessDenied", "Message": "not authorized to perform sts:AssumeRole"}
                }
                raise ClientError(error, operation_name)
        return real(self, operation_name, api_params)

    monkeypatch.setattr(BaseClient, "_make_api_call", spy)
    return calls, refuse


def test_cross_account_scan_through_a_role(run, report, assume_role_calls):
    calls, _ = assume_role_calls
    target = aws.assume_role_session(run.world.session, TARGET_ROLE, EXTERNAL_ID)
    b = estate._Builder(target, REGION)
    vpc = b.vpc("partner", "10.60.0.0/16")
    subnet = b.subnet("partner-a", vpc, "10.60.1.0/24", "a")
    sg = b.security_group("partner", "partner-tasks", "partner tasks")
    b.task_definition("api", [estate._container("api", "public.ecr.aws/partner/api:1.0")])
    b.cluster("partner", "enabled")
    (task_arn,) = b.run_tasks("partner", "api", [subnet], [sg], 1, "1.4.0", service="api")
    calls.clear()

    code, out, err = _cli(
        run, "scan", "--role-arn", TARGET_ROLE, "--external-id", EXTERNAL_ID, "--format", "json"
    )

    assert code in (0, 1), err
    scanned = json.loads(out)
    assert scanned["scope"]["accounts"] == [TARGET_ACCOUNT]
    assert {r["task_arn"] for r in scanned["results"]} == {task_arn}
    assert calls == [{"RoleArn": TARGET_ROLE, "RoleSessionName": "fargate-audit", "ExternalId": EXTERNAL_ID}]
    assert ACCOUNT not in json.dumps(scanned["scope"])
    report(CROSS_ACCOUNT)


def test_cross_account_scan_refused(run, report, assume_role_calls):
    calls, refuse = assume_role_calls
    refuse[0] = True

    code, out, err = _cli(run, "scan", "--role-arn", TARGET_ROLE, "--external-id", EXTERNAL_ID)

    assert code == 2 and out == ""
    assert err == (
        f"fargate-audit: error: cannot assume {TARGET_ROLE}: AssumeRole: AccessDenied: "
        "not authorized to perform sts:AssumeRole\n"
    )
    assert len(calls) == 1
    for args, message in (
        (("--role-arn", "arn:aws:iam::1:user/x"), "is not an IAM role ARN"),
        (("--external-id", EXTERNAL_ID), "--external-id needs --role-arn"),
        (("--role-arn", TARGET_ROLE, "--external-id", "x"), "external id must be 2 to 1224"),
    ):
        code, _, err = _cli(run, "scan", *args)
        assert code == 2 and message in err and err.count("\n") == 1, err
    assert len(calls) == 1  # bad arguments: no AWS call
    report(ROLE_REFUSED)
