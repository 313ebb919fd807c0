"""The four Lambda functions' logic; ``functions/<name>/app.py`` only sets up Powertools
``Logger`` / ``Metrics`` and calls ``<name>(event, context, logger=logger, metrics=metrics)``.

The runtime (boto3 session and clients, rule catalog, RULE_PARAMS, recorder, publisher, VPC
fact cache) is built once per container, on the first call: importing this module makes
no AWS call, creates no client and imports neither boto3 nor the pipeline.

Environment (template.yaml Globals): TABLE_NAME, RULE_PARAMS (JSON params; ``{}``),
PUBLISH_FINDINGS (``true``/``false``), VPC_CACHE_TTL_SECONDS (300), SWEEP_QUEUE_URL
(planner); the region from AWS_REGION. A bad value is one clear error, logged and raised.

Malformed input: EventBridge invokes the task, config and planner functions
asynchronously, where a raise means retries of a poison event; those return
``{"status": "rejected", "error": ...}`` after one structured error log line (ids only)
and a ``MalformedEvents`` metric. Real failures (AWS, DynamoDB) raise: Lambda retries, then
the OnFailure destination keeps the event. The sweep worker reports each failed SQS record
(a malformed body included) as a partial batch failure; SQS retries it, then its DLQ.

Logs carry ids and counts only: never environment values, never a raw event (whose
``overrides`` may hold environment values).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from .errors import ConfigError
from .events import EventError, event_id

_RUNTIME = None  # service.Runtime, built on first use

TRUE_VALUES = ("true", "1", "yes")
FALSE_VALUES = ("false", "0", "no")
DEFAULT_VPC_CACHE_TTL = 300.0


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


def _rule_params(environ: Mapping[str, str], catalog) -> dict | None:
    """RULE_PARAMS (JSON text of a params file) validated against the catalog; None when
    unset or ``{}`` (defaults). The text itself is never echoed (it may be long)."""
    import json

    from .params import validate_params

    text = (environ.get("RULE_PARAMS") or "").strip()
    if not text:
        return None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"RULE_PARAMS: not valid JSON ({exc.msg} at char {exc.pos})") from None
    if data == {}:
        return None
    return validate_params(data, catalog, source="RULE_PARAMS")


def build_runtime(environ: Mapping[str, str] | None = None, session=None, logger=None):
    """A :class:`service.Runtime` from the environment (no AWS call is made)."""
    from . import aws, collect, record, rules, service
    from .errors import CredentialsError

    environ = os.environ if environ is None else environ
    table = (environ.get("TABLE_NAME") or "").strip()
    if not table:
        raise ConfigError("TABLE_NAME is not set (the posture table's name)")
    publish_findings = _flag(environ, "PUBLISH_FINDINGS", True)
    ttl = _ttl(environ)
    catalog = rules.load_catalog()
    params = _rule_params(environ, catalog)
    session = session if session is not None else aws.session_from_env()
    region = session.region_name
    if not region:
        raise CredentialsError(aws.NO_REGION_MESSAGE)
    clients = aws.Clients(session)
    recorder = record.Recorder(table, clients.get("dynamodb", region))
    publisher = None
    if publish_findings:
        from .publish import Publisher

        publisher = Publisher(clients.get("securityhub", region), recorder, logger=logger)
    return service.Runtime(
        clients=clients,
        region=region,
        catalog=catalog,
        params=params,
        recorder=recorder,
        publisher=publisher,
        cache=collect.FactCache(ttl),
    )


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


def _rejected(exc: EventError, event: Any, logger, metrics) -> dict:
    _log(logger, "error", "malformed event rejected", error=str(exc), event_id=event_id(event))
    _metric(metrics, "MalformedEvents")
    return {"status": "rejected", "event_id": event_id(event), "error": str(exc)}


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


# --------------------------------------------------------------------------- handlers


def task_events(event, context, logger=None, metrics=None) -> dict:
    """ECS task state change (EventBridge, asynchronous)."""
    from . import service

    rt = runtime(logger)
    try:
        outcome = service.handle_task_event(event, rt, _now())
    except EventError as exc:
        return _rejected(exc, event, logger, metrics)
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
    )
    return outcome


def config_events(event, context, logger=None, metrics=None) -> dict:
    """AWS Config configuration item change of a network resource (EventBridge, async)."""
    from . import service

    rt = runtime(logger)
    try:
        outcome = service.handle_config_event(event, rt, _now())
    except EventError as exc:
        return _rejected(exc, event, logger, metrics)
    if outcome["status"] == service.IGNORED:
        _metric(metrics, "IgnoredEvents")
    _batch_metrics(metrics, outcome)
    _metric(metrics, "DescribeFailures", len(outcome.get("errors") or []))
    _log(
        logger,
        "info",
        f"config event {outcome['status']}",
        event_id=outcome.get("event_id"),
        resource_id=outcome.get("resource_id"),
        resource_type=outcome.get("resource_type"),
        tasks=outcome.get("tasks"),
        audited=outcome.get("audited"),
        stopped=outcome.get("stopped"),
        errors=outcome.get("errors") or None,
        findings=outcome.get("findings"),
    )
    return outcome


def sweep_planner(event, context, logger=None, metrics=None) -> dict:
    """The schedule: queue one sweep message per cluster (SWEEP_QUEUE_URL)."""
    from . import events, service

    rt = runtime(logger)
    try:
        parsed = events.parse_scheduled_event(event)
    except EventError as exc:
        return _rejected(exc, event, logger, metrics)
    queue_url = (os.environ.get("SWEEP_QUEUE_URL") or "").strip()
    if not queue_url:
        error = ConfigError("SWEEP_QUEUE_URL is not set (the sweep queue's URL)")
        _log(logger, "error", "configuration error", error=str(error))
        raise error
    outcome = service.plan_sweep(rt, queue_url, _now(), region=parsed["region"])
    _metric(metrics, "SweepMessagesSent", outcome["messages"])
    _log(logger, "info", "sweep planned", event_id=parsed["event_id"], **outcome)
    return outcome | {"event_id": parsed["event_id"]}


def sweep_worker(event, context, logger=None, metrics=None) -> dict:
    """SQS batch of sweep messages; failed records are reported (ReportBatchItemFailures).
    Powertools raises when every record of a batch failed (the whole batch is retried)."""
    from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response

    from . import service

    rt = runtime(logger)

    def record_handler(record) -> dict:
        sqs_record = record
        message_id = sqs_record.message_id
        try:
            outcome = service.sweep_cluster(sqs_record.body, rt, _now(), message_id=message_id)
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
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
