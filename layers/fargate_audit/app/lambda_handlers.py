"""The Lambda functions' logic; ``functions/<name>/app.py`` only sets up Powertools
``Logger`` / ``Metrics`` and calls ``<name>(event, context, logger=logger, metrics=metrics)``.

The runtime (boto3 session and clients, rule catalog, RULE_PARAMS, recorder, publisher, VPC
fact cache) is built once per container, on the first call: importing this module makes
no AWS call, creates no client and imports neither boto3 nor the pipeline.

Environment (template.yaml Globals): TABLE_NAME, RULE_PARAMS (JSON params; ``{}``),
PUBLISH_FINDINGS (``true``/``false``), VPC_CACHE_TTL_SECONDS (300), ALLOWED_ACCOUNTS /
ALLOWED_REGIONS (comma-separated; empty: the account the function reads and its own
region), AUDIT_ROLE_ARN / AUDIT_ROLE_EXTERNAL_ID (optional: read ECS/EC2 and import
findings through that role), SWEEP_QUEUE_URL (planner), EVENTS_DLQ_URL (the asynchronous
functions), FLOW_LOG_FORMAT / FLOW_LOG_VPC_CIDRS (flow_logs: the fallback format where no
flow log of the account delivers to the batch's group, the VPCs' own CIDRs;
``_flow_log_settings``); the region from AWS_REGION. A bad value is one clear error,
logged and raised.

Organization scale (interface.md; each empty or unset: not used, one account as before):
AUDITED_ACCOUNTS (comma-separated ids, each audited once) and/or ORGANIZATIONS_ROLE_ARN
(a role in the management or delegated-admin account: the organization's ACTIVE accounts,
under AUDITED_ORGANIZATIONAL_UNITS when given, listed on first use and cached 15 minutes),
AUDITED_REGIONS, MEMBER_ROLE_NAME (``fargate-audit-member``), MEMBER_EXTERNAL_ID (presented
to the member roles and to the ORGANIZATIONS_ROLE_ARN role alike). Each
account's facts are read and its findings imported through
``arn:aws:iam::<account>:role/<MEMBER_ROLE_NAME>`` (with the ExternalId, the session named
after the function: AWS_LAMBDA_FUNCTION_NAME), one AssumeRole per account per warm
container, refreshed before the credentials expire. The function's own account, when it
is audited, is read with the function's own role (no member role needed there). Events
are accepted from the audited accounts only (within ALLOWED_ACCOUNTS when that is set
too). AUDIT_ROLE_ARN (one audited account) and these are two designs: setting both is a
configuration error. An event whose account's role is refused is an error: logged
(account, region, the refused ``sts:AssumeRole``), ``AssumeRoleFailures``, dead-lettered
like a malformed event (values redacted) and nothing is written for it; the sweep reports
an unreachable account or region (``UnreachableScopes``, one log line each) and goes on.

Malformed input: EventBridge (and CloudWatch Logs, for dns_logs) invokes the task, config,
planner and DNS log functions asynchronously, where a raise means retries of a poison
event; those return ``{"status": "rejected", "error": ...}`` after one structured error
log line (ids only), a ``MalformedEvents`` metric and one message to EVENTS_DLQ_URL
holding the event with every environment value redacted (``events.dead_letter_body``; if
that send fails it is logged and counted, ``DeadLetterFailures``, rather than retried into
Lambda's own failure record, which would carry the unredacted event). An event from an
account or region outside the allowlist is rejected the same way without a dead letter
(``ForeignEvents``). Real failures (AWS, DynamoDB) are logged (the event's id and the
error's type and code) and counted (``FailedEvents``), then raised: Lambda retries; then
the OnFailure destination keeps the event, except the task events function's, which has
none (a task event's overrides carry environment values: Lambda's failure record would
store them). The sweep worker reports each failed SQS record (a
malformed body included) as a partial batch failure; SQS retries it, then its DLQ.

The envelope (runtime, deadline, rejection of malformed and foreign events, dead
letters, the error metrics) is one decorator, :func:`handler_envelope`, around the four
asynchronous handlers; each handler body only reports on its outcome.

Time: each invocation gives the runtime's clients a deadline from the Lambda context
(``aws.Deadline``, keeping RETRY_RESERVE_SECONDS): throttled calls are retried with
botocore's backoff only while that leaves the reserve, then fail as ``ERROR`` facts
(``RetriesStoppedByDeadline``). The sweep worker starts a message (a page of a cluster's
tasks) only with SWEEP_START_MIN_SECONDS left; the records it did not start are reported
as batch item failures and redelivered (``SweepsDeferred``). The messages of one worker
invocation read each VPC's facts afresh once (the first that needs them), not once each.

Logs carry ids and counts only: never environment values, never a raw event (whose
``overrides`` may hold environment values).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from fargate_audit.app.events import EventError, event_id
from fargate_audit.core.errors import ConfigError

_RUNTIME = None  # service.Runtime, built on first use

TRUE_VALUES = ("true", "1", "yes")
FALSE_VALUES = ("false", "0", "no")
DEFAULT_VPC_CACHE_TTL = 300.0
RETRY_RESERVE_SECONDS = 10.0  # kept for recording and publishing after the reads
SWEEP_START_MIN_SECONDS = 60.0  # the sweep worker starts a message (a page) only with this much left
# Services read through AUDIT_ROLE_ARN (the audited account's), besides every fact read
# (edge.aws.FACT_READ_SERVICES: load balancers and web ACLs too): the findings' import.
# DynamoDB and SQS stay the stack's.
AUDIT_ROLE_SERVICES = frozenset({"securityhub"})
DEAD_LETTER_ATTRIBUTE = "fargate-audit-rejected"


# --------------------------------------------------------------------------- runtime


def _flag(environ: Mapping[str, str], name: str, default: bool) -> bool:
    value = (environ.get(name) or "").strip().lower()
    if not value:
        return default
    if value in TRUE_VALUES:
        return True
    if value in FALSE_VALUES:
        return False
    raise ConfigError(f"{name}: {value!r} is not true or false")


def _ttl(environ: Mapping[str, str]) -> float:
    text = (environ.get("VPC_CACHE_TTL_SECONDS") or "").strip()
    if not text:
        return DEFAULT_VPC_CACHE_TTL
    try:
        ttl = float(text)
    except ValueError:
        raise ConfigError(f"VPC_CACHE_TTL_SECONDS: {text!r} is not a number of seconds") from None
    if ttl < 0:
        raise ConfigError(f"VPC_CACHE_TTL_SECONDS: {text!r} is negative")
    return ttl


def _id_list(environ: Mapping[str, str], name: str, pattern: str, what: str) -> frozenset[str]:
    import re

    values = [v.strip() for v in (environ.get(name) or "").split(",") if v.strip()]
    for value in values:
        if not re.fullmatch(pattern, value):
            raise ConfigError(f"{name}: {value!r} is not {what}")
    return frozenset(values)


def _rule_params(environ: Mapping[str, str], catalog) -> dict | None:
    """RULE_PARAMS (JSON text of a params file) validated against the catalog; None when
    unset or ``{}`` (defaults). The text itself is never echoed (it may be long)."""
    import json

    from fargate_audit.core.params import validate_params

    text = (environ.get("RULE_PARAMS") or "").strip()
    if not text:
        return None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"RULE_PARAMS: not valid JSON ({exc.msg} at char {exc.pos})") from None
    except RecursionError:
        raise ConfigError("RULE_PARAMS: not valid JSON (nested too deeply)") from None
    if data == {}:
        return None
    return validate_params(data, catalog, source="RULE_PARAMS")


def build_runtime(environ: Mapping[str, str] | None = None, session=None, logger=None):
    """A :class:`service.Runtime` from the environment (no AWS call is made)."""
    from fargate_audit.app import service
    from fargate_audit.core import rules
    from fargate_audit.core.errors import CredentialsError
    from fargate_audit.edge import aws, collect
    from fargate_audit.findings.state import FindingStore
    from fargate_audit.stores import record
    from fargate_audit.stores.table import Table

    environ = os.environ if environ is None else environ
    table = (environ.get("TABLE_NAME") or "").strip()
    if not table:
        raise ConfigError("TABLE_NAME is not set (the posture table's name)")
    publish_findings = _flag(environ, "PUBLISH_FINDINGS", True)
    ttl = _ttl(environ)
    catalog = rules.load_catalog()
    params = _rule_params(environ, catalog)
    accounts = _id_list(environ, "ALLOWED_ACCOUNTS", r"[0-9]{12}", "a 12-digit account id")
    regions = _id_list(environ, "ALLOWED_REGIONS", r"[a-z]{2}(-[a-z]+)+-[0-9]+", "a region name")
    role_arn = (environ.get("AUDIT_ROLE_ARN") or "").strip()
    external_id = (environ.get("AUDIT_ROLE_EXTERNAL_ID") or "").strip() or None
    if role_arn:
        aws.check_role(role_arn, external_id, "AUDIT_ROLE_ARN")
    elif external_id:
        raise ConfigError("AUDIT_ROLE_EXTERNAL_ID is set without AUDIT_ROLE_ARN")
    flow_format, flow_private = _flow_log_settings(environ)
    member_roles = any(
        (environ.get(key) or "").strip() for key in ("AUDITED_ACCOUNTS", "ORGANIZATIONS_ROLE_ARN")
    )
    if member_roles and role_arn:
        raise ConfigError(
            "AUDIT_ROLE_ARN (one audited account) and AUDITED_ACCOUNTS / ORGANIZATIONS_ROLE_ARN "
            "(member roles) are both set: set one"
        )
    organization = _organization_settings(environ)
    audited_regions = organization.get("regions", frozenset()) if organization else frozenset()
    session = session if session is not None else aws.session_from_env()
    region = session.region_name
    if not region:
        raise CredentialsError(aws.NO_REGION_SET_MESSAGE)
    audited = members = None
    if organization:
        clients = aws.Clients(session)
        audited, members = _organization_runtime(organization, session, clients)
    elif role_arn:
        reader = aws.assume_role_session(session, role_arn, external_id, eager=False)

        def factory(service: str, client_region: str):
            audited = service in aws.FACT_READ_SERVICES or service in AUDIT_ROLE_SERVICES
            chosen = reader if audited else session
            return aws.client(chosen, service, client_region)

        clients = aws.Clients(session, factory=factory)
    else:
        clients = aws.Clients(session)
    store = Table(table, clients.get("dynamodb", region))
    recorder = record.Recorder(store)
    findings = FindingStore(store)
    publisher = None
    if publish_findings:
        from fargate_audit.findings.publish import Publisher

        # each finding is imported in its own Region (Security Hub's product ARN and
        # findings are regional): a task of another audited Region of this account, or of
        # an organization's member account through that account's role
        if members is not None:

            def client_for(account: str, finding_region: str):
                return members.get(account).get("securityhub", finding_region)

        else:

            def client_for(account: str, finding_region: str):
                return clients.get("securityhub", finding_region)

        publisher = Publisher(
            clients.get("securityhub", region), findings, logger=logger, client_for=client_for
        )
    return service.Runtime(
        clients=clients,
        region=region,
        catalog=catalog,
        params=params,
        recorder=recorder,
        findings=findings,
        publisher=publisher,
        cache=collect.FactCache(ttl),
        allowed_accounts=accounts,
        allowed_regions=regions,
        audit_role_account=aws.role_account(role_arn) if role_arn else None,
        events_dlq_url=(environ.get("EVENTS_DLQ_URL") or "").strip() or None,
        sweep_queue_url=(environ.get("SWEEP_QUEUE_URL") or "").strip() or None,
        audited=audited,
        accounts=members,
        audited_regions=audited_regions,
        flow_log_format=flow_format,
        flow_private=flow_private,
    )


def _flow_log_settings(environ: Mapping[str, str]) -> tuple[str | None, tuple]:
    """FLOW_LOG_FORMAT (None when empty) and FLOW_LOG_VPC_CIDRS (comma-separated CIDRs that
    are not internet: the VPCs' own, beside RFC 1918 and the rest of the fixed list). A
    batch is read by the LogFormat of the flow log delivering to its log group
    (ec2:DescribeFlowLogs); FLOW_LOG_FORMAT is the fallback where the account has none
    (else the documented format) and the format to read where flow logs of different
    formats share the group. A bad CIDR is a ConfigError; a format that lacks a needed
    field is rejected batch by batch (dead-lettered, naming the fields)."""
    from fargate_audit.app import flowlogs

    text = (environ.get("FLOW_LOG_FORMAT") or "").strip() or None
    cidrs = [c.strip() for c in (environ.get("FLOW_LOG_VPC_CIDRS") or "").split(",") if c.strip()]
    try:
        return text, flowlogs.private_networks(cidrs)
    except ValueError as exc:
        raise ConfigError(f"FLOW_LOG_VPC_CIDRS: {exc}") from None


ORGANIZATIONS_TTL_SECONDS = 900.0  # the organization's account list is read again after this


def _organization_settings(environ: Mapping[str, str]) -> dict:
    """The organization-scale settings, checked; ``{}`` when neither AUDITED_ACCOUNTS nor
    ORGANIZATIONS_ROLE_ARN is set (one account: MEMBER_* and AUDITED_REGIONS unused)."""
    from fargate_audit.edge import accounts, aws

    ids = accounts.parse_account_ids([environ.get("AUDITED_ACCOUNTS") or ""], source="AUDITED_ACCOUNTS")
    org_role = (environ.get("ORGANIZATIONS_ROLE_ARN") or "").strip()
    if not ids and not org_role:
        return {}
    if org_role:
        aws.check_role(org_role, None, "ORGANIZATIONS_ROLE_ARN")
    unit_id = r"(ou-[0-9a-z]{4,32}-[a-z0-9]{8,32}|r-[0-9a-z]{4,32})"
    units = _id_list(environ, "AUDITED_ORGANIZATIONAL_UNITS", unit_id, "an OU or root id")
    if units and not org_role:
        raise ConfigError("AUDITED_ORGANIZATIONAL_UNITS is set without ORGANIZATIONS_ROLE_ARN")
    role_name = (environ.get("MEMBER_ROLE_NAME") or "").strip() or accounts.DEFAULT_MEMBER_ROLE_NAME
    accounts.check_role_name(role_name, "MEMBER_ROLE_NAME")
    external_id = (environ.get("MEMBER_EXTERNAL_ID") or "").strip() or None
    if external_id is None:
        # templates/member.yaml's trust requires sts:ExternalId: without one every AssumeRole
        # of a member role is AccessDenied (the emulator does not evaluate trust policies)
        raise ConfigError(
            "MEMBER_EXTERNAL_ID is not set: the member roles (templates/member.yaml) trust only "
            "callers presenting their ExternalId"
        )
    aws.check_role(accounts.member_role_arn("000000000000", role_name), external_id, "MEMBER_EXTERNAL_ID")
    return {
        "accounts": ids,
        "organizations_role_arn": org_role or None,
        "units": sorted(units),
        "regions": _id_list(environ, "AUDITED_REGIONS", r"[a-z]{2}(-[a-z]+)+-[0-9]+", "a region name"),
        "role_name": role_name,
        "external_id": external_id,
        "session_name": (environ.get("AWS_LAMBDA_FUNCTION_NAME") or "").strip() or "fargate-audit",
    }


def _organization_runtime(settings: dict, session, clients):
    """(AuditedAccounts, AccountClients) of the settings; no AWS call is made."""
    from fargate_audit.edge import accounts

    audited = accounts.AuditedAccounts(
        settings["accounts"],
        organizations_role_arn=settings["organizations_role_arn"],
        parent_ids=settings["units"],
        source=session,
        external_id=settings["external_id"],
        session_name=settings["session_name"],
        ttl_seconds=ORGANIZATIONS_TTL_SECONDS,
    )
    sessions = accounts.MemberSessions(
        session,
        settings["role_name"],
        settings["external_id"],
        session_name=settings["session_name"],
    )
    return audited, accounts.AccountClients(clients, sessions)


def runtime(logger=None):
    """The container's runtime, built on the first call. A configuration error is logged
    (one line) and raised: every invocation fails until the stack is fixed."""
    global _RUNTIME
    if _RUNTIME is None:
        try:
            _RUNTIME = build_runtime(logger=logger)
        except ConfigError as exc:
            _log(logger, "error", "configuration error", error=str(exc))
            raise
    return _RUNTIME


def set_runtime(rt) -> None:
    """Use ``rt`` (e.g. built by build_runtime with an instrumented session) from now on."""
    global _RUNTIME
    _RUNTIME = rt


def reset_runtime() -> None:
    """Forget the runtime (tests; a new environment): the next call builds a new one."""
    set_runtime(None)


# --------------------------------------------------------------------------- logging, metrics


def _log(logger, level: str, message: str, **fields: Any) -> None:
    if logger is not None:
        getattr(logger, level)(message, extra={k: v for k, v in fields.items() if v is not None})


def _metric(metrics, name: str, value: float = 1) -> None:
    if metrics is not None and value:
        metrics.add_metric(name=name, unit="Count", value=value)


def _now() -> datetime:
    return datetime.now(UTC)


def _own_account(rt, context) -> None:
    """The function's own account, from the context's ARN: read (and its findings imported)
    with the function's own role, not through a member role."""
    arn = getattr(context, "invoked_function_arn", None)
    if isinstance(arn, str) and arn.startswith("arn:") and arn.count(":") >= 5:
        rt.own_account = arn.split(":")[4] or rt.own_account
    if rt.accounts is not None:
        rt.accounts.sessions.own_account = rt.own_account


def _begin(rt, context) -> int:
    """Per invocation: the function's own account (``_own_account``) and the clients'
    deadline (from its remaining time). Returns the clients' cut-short retry count so far."""
    from fargate_audit.edge.aws import Deadline

    _own_account(rt, context)
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    rt.clients.deadline = Deadline(remaining, RETRY_RESERVE_SECONDS) if callable(remaining) else None
    return rt.clients.retries_stopped


def _end(rt, metrics, stopped_before: int) -> None:
    _metric(metrics, "RetriesStoppedByDeadline", rt.clients.retries_stopped - stopped_before)


def _account_list_failures(rt) -> int:
    return rt.audited.failures if rt is not None and rt.audited is not None else 0


def _account_list_refused(rt, logger, metrics, failures_before: int) -> None:
    """The organization's account list could not be refreshed during the invocation (the
    previous list stays in use): one warning naming the refused call, counted."""
    failed = _account_list_failures(rt) - failures_before
    if failed > 0:
        _log(
            logger,
            "warning",
            "organization account list not refreshed: the previous list stays in use",
            error=rt.audited.error,
        )
        _metric(metrics, "AccountListFailures", failed)


def _dead_letter(
    rt, event: Any, error: str, function: str, logger, metrics, reason: str = "malformed"
) -> bool:
    """Send a rejected event (environment values redacted) to EVENTS_DLQ_URL. False when
    none is configured or the send failed (logged and counted: never retried, see above)."""
    if not rt.events_dlq_url:
        return False
    from fargate_audit.app.events import dead_letter_body
    from fargate_audit.edge import queue
    from fargate_audit.edge.aws import AWS_ERRORS, describe_error

    try:
        queue.send_message(
            rt.clients,
            rt.region,
            rt.events_dlq_url,
            dead_letter_body(event, error, function),
            {DEAD_LETTER_ATTRIBUTE: {"DataType": "String", "StringValue": reason}},
        )
    except AWS_ERRORS as exc:
        _log(
            logger,
            "error",
            f"{reason} event not dead-lettered",
            error=describe_error(exc, "SendMessage"),
            event_id=event_id(event),
        )
        _metric(metrics, "DeadLetterFailures")
        return False
    _metric(metrics, "DeadLetteredEvents")
    return True


def _rejected(exc: EventError, event: Any, logger, metrics, rt=None, function: str = "") -> dict:
    _log(logger, "error", "malformed event rejected", error=str(exc), event_id=event_id(event))
    _metric(metrics, "MalformedEvents")
    outcome = {"status": "rejected", "event_id": event_id(event), "error": str(exc)}
    if rt is not None and rt.events_dlq_url:
        outcome["dead_lettered"] = _dead_letter(rt, event, str(exc), function, logger, metrics)
    return outcome


def _failed(exc: Exception, event: Any, logger, metrics) -> None:
    """A real failure (AWS, DynamoDB) of an event's processing, before it is raised for
    Lambda to retry: one error line naming the event and the error's type and code (never
    its text, which could quote a value) and ``FailedEvents``. The task events function
    has no OnFailure destination (template.yaml): Lambda's failure record would hold the
    raw event, whose task overrides carry environment values; this line and the metric
    are what remains of an event that fails every retry, and the sweep re-audits its task."""
    from fargate_audit.edge.aws import error_code

    code = error_code(exc)
    name = type(exc).__name__
    _log(
        logger,
        "error",
        "event processing failed (Lambda retries it)",
        error=name if code == name else f"{name} {code}",
        event_id=event_id(event),
    )
    _metric(metrics, "FailedEvents")


def _foreign(exc, event: Any, logger, metrics) -> dict:
    _log(
        logger,
        "warning",
        "event from outside the allowed accounts and regions rejected",
        error=str(exc),
        event_id=event_id(event),
        account=exc.account,
        region=exc.region,
    )
    _metric(metrics, "ForeignEvents")
    return {"status": "rejected", "event_id": event_id(event), "reason": str(exc)}


def _unreachable(exc, event: Any, logger, metrics, rt, function: str) -> dict:
    """An event of an audited account whose member role was refused: an error (one line
    naming the account, the region and the refused call), ``AssumeRoleFailures``, a dead
    letter (values redacted); nothing was read or written for it."""
    _log(
        logger,
        "error",
        "audited account unreachable: event not audited",
        error=str(exc),
        event_id=event_id(event),
        account=exc.account,
        region=exc.region,
    )
    _metric(metrics, "AssumeRoleFailures")
    outcome = {
        "status": "failed",
        "event_id": event_id(event),
        "account": exc.account,
        "region": exc.region,
        "error": str(exc),
    }
    if rt.events_dlq_url:
        outcome["dead_lettered"] = _dead_letter(rt, event, str(exc), function, logger, metrics, "assume-role")
    return outcome


def _findings_metrics(metrics, findings: Mapping[str, Any] | None) -> None:
    if not findings:
        return
    _metric(metrics, "FindingsImported", findings.get("imported", 0))
    _metric(metrics, "FindingsArchived", findings.get("archived", 0))
    _metric(metrics, "FindingsNotDelivered", findings.get("failed", 0))


def _batch_metrics(metrics, outcome: Mapping[str, Any]) -> None:
    _metric(metrics, "AuditedTasks", outcome.get("audited", 0))
    _metric(metrics, "PostureChanges", outcome.get("changed", 0))
    _metric(metrics, "StaleEvents", outcome.get("stale", 0))
    _metric(metrics, "StoppedTasks", outcome.get("stopped", 0))
    _findings_metrics(metrics, outcome.get("findings"))


# --------------------------------------------------------------------------- the envelope


def handler_envelope(function: str, run: str, *, deadline: bool = True, retries_metric: bool = True):
    """The one envelope of the asynchronous handlers: the decorated function only reports
    (metrics, the outcome's log line) on what ``service.<run>(event, rt, now)`` returned.

    Around that call: the container's runtime (``runtime``); the function's account from
    the context and, with ``deadline``, the clients' deadline (``_begin``) and, with
    ``retries_metric``, ``RetriesStoppedByDeadline`` once the call is over (``_end``); a
    malformed event (``EventError``) is rejected: one error log line, ``MalformedEvents``,
    a dead letter to EVENTS_DLQ_URL (``_rejected``); an event from outside the allowlist
    likewise, without a dead letter (``ForeignEvents``, ``_foreign``). Anything else is
    logged and counted (``FailedEvents``, ``_failed``) and raises: Lambda retries."""

    def decorate(report):
        def handler(event, context, logger=None, metrics=None) -> dict:
            from fargate_audit.app import service

            rt = runtime(logger)
            if deadline:
                stopped = _begin(rt, context)
            else:  # no deadline (the log functions), but their own account all the same
                stopped = 0
                _own_account(rt, context)
            listing_failures = _account_list_failures(rt)
            try:
                outcome = getattr(service, run)(event, rt, _now())
            except EventError as exc:
                return _rejected(exc, event, logger, metrics, rt, function)
            except service.ForeignEventError as exc:
                return _foreign(exc, event, logger, metrics)
            except service.UnreachableScope as exc:
                return _unreachable(exc, event, logger, metrics, rt, function)
            except Exception as exc:
                _failed(exc, event, logger, metrics)
                raise
            finally:
                if deadline and retries_metric:
                    _end(rt, metrics, stopped)
                _account_list_refused(rt, logger, metrics, listing_failures)
            return report(outcome, rt, logger, metrics)

        # the handler's name and text; not functools.wraps: its signature is the handler's
        for name in ("__module__", "__name__", "__qualname__", "__doc__"):
            setattr(handler, name, getattr(report, name))
        handler.report = report
        return handler

    return decorate


# --------------------------------------------------------------------------- handlers


@handler_envelope("task_events", "handle_task_event")
def task_events(outcome: dict, rt, logger, metrics) -> dict:
    """ECS task state change (EventBridge, asynchronous)."""
    from fargate_audit.app import service

    status = outcome["status"]
    if status == service.IGNORED:
        _metric(metrics, "IgnoredEvents")
    elif status == service.STALE:
        _metric(metrics, "StaleEvents")
    elif status == service.AUDITED:
        _metric(metrics, "AuditedTasks")
        _metric(metrics, "PostureChanges", int(outcome["record"] in ("created", "changed")))
        _metric(metrics, "AwsReadCalls", sum(outcome.get("api_calls", {}).values()))
    elif status == service.STOPPED:
        _metric(metrics, "StoppedTasks")
    _findings_metrics(metrics, outcome.get("findings"))
    _findings_metrics(metrics, outcome.get("flushed"))
    _log(
        logger,
        "info",
        f"task event {status}",
        event_id=outcome.get("event_id"),
        task_arn=outcome.get("task_arn"),
        last_status=outcome.get("last_status"),
        version=outcome.get("version"),
        reason=outcome.get("reason"),
        record=outcome.get("record"),
        rules_changed=outcome.get("rules_changed"),
        findings=outcome.get("findings"),
        flushed=outcome.get("flushed") or None,
    )
    return outcome


@handler_envelope("config_events", "handle_config_event")
def config_events(outcome: dict, rt, logger, metrics) -> dict:
    """AWS Config configuration item change of a network resource (EventBridge, async)."""
    from fargate_audit.app import service

    if outcome["status"] == service.IGNORED:
        _metric(metrics, "IgnoredEvents")
    _metric(metrics, "SweepMessagesSent", outcome.get("messages") or 0)
    _batch_metrics(metrics, outcome)
    _findings_metrics(metrics, outcome.get("flushed"))
    _metric(metrics, "DescribeFailures", len(outcome.get("errors") or []))
    _log(
        logger,
        "info",
        f"config event {outcome['status']}",
        event_id=outcome.get("event_id"),
        resource_id=outcome.get("resource_id"),
        resource_type=outcome.get("resource_type"),
        reason=outcome.get("reason"),
        tasks=outcome.get("tasks"),
        audited=outcome.get("audited"),
        stopped=outcome.get("stopped"),
        messages=outcome.get("messages"),
        errors=outcome.get("errors") or None,
        findings=outcome.get("findings"),
    )
    return outcome


@handler_envelope("sweep_planner", "accept_scheduled_event", retries_metric=False)
def sweep_planner(parsed: dict, rt, logger, metrics) -> dict:
    """The schedule: queue one sweep message per page of 100 tasks of each cluster
    (SWEEP_QUEUE_URL); ``SweepMessagesSent``, and each unreachable scope or cluster logged."""
    from fargate_audit.app import service

    queue_url = (os.environ.get("SWEEP_QUEUE_URL") or "").strip()
    if not queue_url:
        error = ConfigError("SWEEP_QUEUE_URL is not set (the sweep queue's URL)")
        _log(logger, "error", "configuration error", error=str(error))
        raise error
    try:
        outcome = service.plan_sweep(rt, queue_url, _now(), region=parsed["region"])
    except service.SweepError as exc:
        _unreachable_scopes(logger, metrics, (exc.outcome or {}).get("unreachable") or [])
        raise
    _unreachable_scopes(logger, metrics, outcome.get("unreachable") or [])
    _metric(metrics, "SweepMessagesSent", outcome["messages"])
    _log(logger, "info", "sweep planned", event_id=parsed["event_id"], **outcome)
    return outcome | {"event_id": parsed["event_id"]}


def sweep_worker(event, context, logger=None, metrics=None) -> dict:
    """SQS batch of sweep messages; failed records are reported (ReportBatchItemFailures).
    Powertools raises when every record of a batch failed (the whole batch is retried)."""
    from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response

    from fargate_audit.app import service

    rt = runtime(logger)
    stopped = _begin(rt, context)
    listing_failures = _account_list_failures(rt)
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    started = rt.cache.now()  # VPC facts fetched from now on are fresh for every message of the batch

    def record_handler(record) -> dict:
        sqs_record = record
        message_id = sqs_record.message_id
        if callable(remaining) and remaining() < SWEEP_START_MIN_SECONDS * 1000:
            _log(
                logger,
                "warning",
                "sweep deferred: too little time left in the invocation",
                message_id=message_id,
                remaining_ms=remaining(),
            )
            _metric(metrics, "SweepsDeferred")
            raise SweepDeferred(f"{message_id}: deferred with {remaining()} ms left")
        try:
            body = sqs_record.raw_event.get("body")
            if not isinstance(body, str):
                raise EventError("sweep message: the SQS record has no body")
            outcome = service.sweep_cluster(body, rt, _now(), message_id=message_id, refreshed_since=started)
        except service.ForeignEventError as exc:
            _foreign(exc, {"messageId": message_id}, logger, metrics)
            return {"status": "rejected", "reason": str(exc)}
        except service.UnreachableScope as exc:  # the other records go on; SQS retries, then its DLQ
            _unreachable_scopes(
                logger, metrics, [{"account_id": exc.account, "region": exc.region, "error": str(exc)}]
            )
            raise
        except EventError as exc:
            _log(logger, "error", "malformed sweep message", error=str(exc), message_id=message_id)
            _metric(metrics, "MalformedEvents")
            raise
        except service.SweepError as exc:
            _log(logger, "error", "sweep incomplete", error=str(exc), message_id=message_id)
            _metric(metrics, "SweepFailures")
            if exc.outcome:
                _batch_metrics(metrics, exc.outcome)
            raise
        except Exception as exc:  # DynamoDB, Security Hub...: named and counted, then retried
            _failed(exc, {"messageId": message_id}, logger, metrics)
            raise
        _batch_metrics(metrics, outcome)
        _findings_metrics(metrics, outcome.get("flushed"))
        _metric(metrics, "AwsReadCalls", sum(outcome.get("api_calls", {}).values()))
        _log(
            logger,
            "info",
            "cluster swept",
            message_id=message_id,
            cluster_arn=outcome["cluster_arn"],
            tasks=outcome["tasks"],
            audited=outcome["audited"],
            changed=outcome["changed"],
            stopped=outcome["stopped"],
            findings=outcome["findings"],
        )
        return outcome

    processor = BatchProcessor(event_type=EventType.SQS)
    try:
        return process_partial_response(
            event=event, record_handler=record_handler, processor=processor, context=context
        )
    finally:
        _end(rt, metrics, stopped)
        _account_list_refused(rt, logger, metrics, listing_failures)


def _unreachable_scopes(logger, metrics, unreachable: list[dict]) -> None:
    """One error line per (account, region), or cluster (``cluster_arn``: its ListTasks
    refused), the sweep could not reach, naming the refused call; ``UnreachableScopes``
    (both kinds) and, for refused member roles, ``AssumeRoleFailures``."""
    for scope in unreachable:
        cluster = {"cluster_arn": scope["cluster_arn"]} if scope.get("cluster_arn") else {}
        _log(
            logger,
            "error",
            "audited cluster's tasks not listed: queued whole, for a worker to list (retried by SQS)"
            if cluster
            else "audited account and region unreachable: not swept",
            account=scope["account_id"],
            region=scope["region"],
            **cluster,
            error=scope["error"],
        )
    _metric(metrics, "UnreachableScopes", len(unreachable))
    _metric(metrics, "AssumeRoleFailures", sum(s["error"].startswith("sts:AssumeRole") for s in unreachable))


class SweepDeferred(Exception):
    """A sweep message not started for lack of time: reported as a batch item failure."""


@handler_envelope("dns_logs", "handle_dns_logs", deadline=False)
def dns_logs(outcome: dict, rt, logger, metrics) -> dict:
    """A CloudWatch Logs subscription batch of Route 53 Resolver query logs (asynchronous).
    A malformed record is counted, logged by its event id only and skipped; the batch goes
    on. A redelivered batch is recognised and not counted twice."""
    malformed = outcome.get("malformed") or []
    _metric(metrics, "DnsQueryRecords", outcome.get("records", 0))
    _metric(metrics, "MalformedDnsRecords", len(malformed))
    _metric(metrics, "UnattributedDnsQueries", outcome.get("unattributed", 0))
    _metric(metrics, "DuplicateDnsBatches", int(outcome["status"] == "duplicate"))
    _findings_metrics(metrics, outcome.get("findings"))
    if malformed:
        _log(
            logger,
            "warning",
            "malformed query-log records skipped",
            batch_id=outcome.get("batch_id"),
            count=len(malformed),
            event_ids=[m["id"] for m in malformed[:20]],
            reasons=sorted({m["reason"] for m in malformed}),
        )
    _log(
        logger,
        "info",
        f"dns log batch {outcome['status']}",
        batch_id=outcome.get("batch_id"),
        log_group=outcome.get("log_group"),
        records=outcome.get("records"),
        attributed=outcome.get("attributed"),
        unattributed=outcome.get("unattributed"),
        destinations=outcome.get("destinations"),
        chunks_written=outcome.get("chunks_written"),
        chunks_skipped=outcome.get("chunks_skipped"),
        reason=outcome.get("reason"),
        findings=outcome.get("findings"),
    )
    return outcome


@handler_envelope("flow_logs", "handle_flow_logs", deadline=False)
def flow_logs(outcome: dict, rt, logger, metrics) -> dict:
    """A CloudWatch Logs subscription batch of VPC flow-log records (asynchronous), read by
    the format of the flow log delivering to its group (``format_source``). A malformed or
    truncated record is counted, logged by its event id only and skipped; a format without
    the needed fields, or flow logs of different formats on the group (FLOW_LOG_FORMAT
    unset), reject the batch (``MalformedEvents``, a dead letter naming the missing fields
    or the flow logs); a failed ec2:DescribeFlowLogs raises (Lambda retries, then the
    OnFailure destination). A redelivered batch is not counted twice."""
    malformed = outcome.get("malformed") or []
    _metric(metrics, "FlowLogRecords", outcome.get("records", 0))
    _metric(metrics, "MalformedFlowRecords", len(malformed))
    _metric(metrics, "NoDataFlowRecords", outcome.get("no_data", 0))
    _metric(metrics, "EgressFlowRecords", outcome.get("egress", 0))
    _metric(metrics, "RejectedEgressFlowRecords", outcome.get("rejected", 0))
    _metric(metrics, "UnattributedFlowRecords", outcome.get("other_enis", 0))
    _metric(metrics, "DuplicateFlowBatches", int(outcome["status"] == "duplicate"))
    if malformed:
        _log(
            logger,
            "warning",
            "malformed flow-log records skipped",
            batch_id=outcome.get("batch_id"),
            count=len(malformed),
            event_ids=[m["id"] for m in malformed[:20]],
            reasons=sorted({m["reason"] for m in malformed}),
        )
    _log(
        logger,
        "info",
        f"flow log batch {outcome['status']}",
        batch_id=outcome.get("batch_id"),
        log_group=outcome.get("log_group"),
        format_source=outcome.get("format_source"),
        records=outcome.get("records"),
        no_data=outcome.get("no_data"),
        egress=outcome.get("egress"),
        rejected=outcome.get("rejected"),
        other_enis=outcome.get("other_enis"),
        ingress=outcome.get("ingress"),
        private=outcome.get("private"),
        replies=outcome.get("replies"),
        destinations=outcome.get("destinations"),
        chunks_written=outcome.get("chunks_written"),
        chunks_skipped=outcome.get("chunks_skipped"),
        reason=outcome.get("reason"),
    )
    return outcome
