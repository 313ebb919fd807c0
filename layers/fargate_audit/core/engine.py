"""The rule engine: catalog + postures + params -> one result per (task, rule).

For each task (ordered by task ARN) and each rule (in id order):

1. applicability, when the rule has one: a fact it requires in ``posture["errors"]`` ->
   ``ERROR``; the task not concerned -> ``NOT_APPLICABLE`` (whatever else is unknown);
2. the rule's ``requires``: any of them in ``posture["errors"]`` -> ``ERROR`` with
   ``evidence.error`` = ``"fact: message; fact2: message"`` (in the rule's order);
3. the check, given only the parameters the rule declares, resolved for the task
   (``{account}``/``{region}``); a :class:`~fargate_audit.core.checks.FactError` -> ``ERROR``;
4. a ``FAILED`` result matched by an active exemption -> ``PASSED`` with
   ``evidence.exempted = {reason, expires}``; expired exemptions are ignored and listed.

Only the catalog's ``task-posture`` rules are evaluated on postures; ``workload-discovery``
rules (EGR-01, EGR-03) need DNS query logs and flow logs, which a posture does not hold:
:func:`evaluate_discovery` evaluates them on one workload's Discovery (the dns_logs and
flow_logs functions do), with the same steps 3 and 4.

Pure: no boto3, no clock (``today`` is an argument), no environment; postures are never
mutated and evidence never aliases them (checks build fresh evidence rather than the
engine copying it: ``test_no_rule_evidence_aliases_its_posture_for_any_fixture`` holds
every rule to that; a copy here cost a third of the evaluation time).
"""

from __future__ import annotations

import datetime as dt
import gc
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from fargate_audit.core import checks
from fargate_audit.core.params import (
    EXEMPTIONS,
    effective_params,
    exemption_expired,
    match_exemptions,
    resolve_params,
    validate_params,
)
from fargate_audit.core.rules import Catalog, Rule

PASSED, FAILED, NOT_APPLICABLE, ERROR = "PASSED", "FAILED", "NOT_APPLICABLE", "ERROR"
STATUSES = (PASSED, FAILED, NOT_APPLICABLE, ERROR)
POSTURE_VERSION = 1
_CHECK_STATUSES = frozenset({PASSED, FAILED, NOT_APPLICABLE})


@dataclass(frozen=True)
class EvalResult:
    """``results``: ``{"task_arn", "rule_id", "status", "severity", "title", "evidence"}``
    ordered by task ARN then rule id. ``expired_exemptions``: every expired exemption of
    the params file, whether or not it matches a result now (``{"rule", "workload",
    "expires", "reason"}``, params file order): a stale entry is reported so that it is
    renewed or removed. ``counts``: results per status (every status present)."""

    results: list[dict]
    expired_exemptions: list[dict] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)


@contextmanager
def cyclic_gc_paused() -> Iterator[None]:
    """Evaluation allocates ~17 small acyclic dicts per task and keeps them all; CPython's
    cyclic collector would re-traverse the growing result list again and again (about 40%
    of the CPU time over 10,000 postures) while finding nothing to free. Reference counting
    still frees everything; the collector's previous state is restored afterwards. A scan
    pauses it for its whole pipeline (scan.run_scan, the CLI's output) for the same reason:
    botocore's parsed responses and the postures are large and acyclic, and the collector
    cost half of a 1,000-task scan's CPU time re-traversing them."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


_NO_ERRORS: Mapping = {}
_NO_PARAMS: Mapping = {}


def _fact_errors(facts: Iterable[str], errors: Mapping) -> str | None:
    if not errors:
        return None
    missing = [f"{fact}: {errors[fact]}" for fact in facts if fact in errors]
    return "; ".join(missing) if missing else None


def evaluate_rule(rule: Rule, posture: Mapping, params: Mapping) -> tuple[str, dict]:
    """Steps 1-3 for one rule and task (no exemptions). ``params``: every parameter,
    already resolved for the task; the check gets only those the rule declares."""
    return _evaluate(rule, _rule_params(rule, params), posture, posture.get("errors") or _NO_ERRORS)


def _rule_params(rule: Rule, params: Mapping) -> Mapping:
    return {name: params[name] for name in rule.parameters} if rule.parameters else _NO_PARAMS


def _evaluate(rule: Rule, rule_params: Mapping, posture: Mapping, errors: Mapping) -> tuple[str, dict]:
    """:func:`evaluate_rule` with the rule's parameters and the posture's errors at hand
    (the loop in :func:`evaluate` prepares them once per scope and per task)."""
    if rule.applicability is not None:
        error = _fact_errors(rule.applicability.requires, errors)
        if error:
            return ERROR, {"error": error}
        try:
            applies = rule.applicability.function(posture, rule_params)
        except Exception as exc:  # noqa: BLE001 - facts it cannot judge: this rule's ERROR, not the audit's end
            return ERROR, {"error": _check_failed(rule, exc)}
        if not applies:
            return NOT_APPLICABLE, {}
    error = _fact_errors(rule.gating, errors)
    if error:
        return ERROR, {"error": error}
    try:
        status, evidence = rule.function(posture, rule_params)
    except checks.FactError as exc:
        return ERROR, {"error": str(exc)}
    except Exception as exc:  # noqa: BLE001 - facts it cannot judge: this rule's ERROR, not the audit's end
        return ERROR, {"error": _check_failed(rule, exc)}
    if status not in _CHECK_STATUSES or not isinstance(evidence, dict):
        raise TypeError(f"check {rule.check} of {rule.id} returned {status!r}, {type(evidence).__name__}")
    return status, evidence


def _check_failed(rule: Rule, exc: Exception) -> str:
    """The ERROR line of a check that raised on a task's facts (a value out of any range
    AWS documents): the rule and the exception's type; never its text, which could quote
    a fact."""
    return f"{rule.id}: check {rule.check} could not judge this task's facts ({type(exc).__name__})"


def _part(posture: Mapping, path: tuple[str, ...]) -> Any:
    value: Any = posture
    for key in path:
        value = value.get(key) if isinstance(value, Mapping) else None
    return value


def _evaluate_shared(
    rule: Rule, rule_params: Mapping, posture: Mapping, paths: tuple[tuple[str, ...], ...], memo: dict
) -> tuple[str, dict]:
    """:func:`_evaluate` for a check registered with ``inputs`` on a posture without
    errors: once per distinct (parameters, input parts), by identity; the parts are kept
    alive with the entry (their ids stay theirs). Each result gets its own evidence dict
    (an exemption adds ``exempted`` to it)."""
    parts = tuple(_part(posture, path) for path in paths)
    key = (rule.id, id(rule_params), *map(id, parts))
    hit = memo.get(key)
    if hit is None:
        status, evidence = _evaluate(rule, rule_params, posture, _NO_ERRORS)
        hit = memo[key] = (status, evidence, parts)
    return hit[0], dict(hit[1])


def _input_paths(rule: Rule) -> tuple[tuple[str, ...], ...] | None:
    """The posture parts the rule's check depends on alone (its registered inputs), split."""
    paths = rule.inputs
    if paths is None or rule.applicability is not None:
        return None
    return tuple(tuple(path.split(".")) for path in paths)


def _exempt(evidence: dict, exemptions: list, rule_id: str, workload: str, today) -> str:
    """The status of a FAILED result after exemptions: PASSED with ``evidence.exempted``
    when an active exemption matches, else FAILED (an expired one is ignored)."""
    active, _ = match_exemptions(exemptions, rule_id, workload, today)
    if active is None:
        return FAILED
    evidence["exempted"] = {"reason": active["reason"], "expires": active["expires"]}
    return PASSED


def _eval_result(results: list[dict], exemptions: list, today) -> EvalResult:
    counts = dict.fromkeys(STATUSES, 0)
    for result in results:
        counts[result["status"]] += 1
    expired = [
        {key: exemption[key] for key in ("rule", "workload", "expires", "reason")}
        for exemption in exemptions
        if exemption_expired(exemption, today)
    ]
    return EvalResult(results=results, expired_exemptions=expired, counts=counts)


def evaluate(
    catalog: Catalog,
    postures: Iterable[Mapping],
    params: Mapping | None = None,
    today: dt.date | None = None,
) -> EvalResult:
    """Evaluate every rule of ``catalog`` on every posture.

    ``params``: a params document (overrides and ``exemptions``, as :func:`params.load_params`
    returns it; validated again here); ``None`` = defaults, no exemptions. ``today`` decides
    which exemptions expired and is required when there are exemptions.
    """
    overrides = validate_params(params, catalog) if params is not None else {}
    exemptions = overrides.get(EXEMPTIONS) or []
    if exemptions and today is None:
        raise ValueError("evaluate: 'today' is required when exemptions are given")
    values = effective_params(catalog, overrides)

    results: list[dict] = []
    ordered = sorted(postures, key=lambda p: str(p.get("task_arn")))
    # params depend only on the task's account and region: each rule's, once per scope
    prepared_for: dict[tuple, list[tuple[Rule, Mapping, tuple | None]]] = {}
    shared: dict[tuple, tuple] = {}  # results of checks with inputs, see _evaluate_shared
    posture_rules = catalog.posture_rules
    append = results.append
    with cyclic_gc_paused():
        for posture in ordered:
            if posture.get("posture_version") != POSTURE_VERSION:
                raise ValueError(
                    f"{posture.get('task_arn')}: posture_version {posture.get('posture_version')!r} "
                    f"is not {POSTURE_VERSION}"
                )
            scope = (posture.get("account_id"), posture.get("region"))
            prepared = prepared_for.get(scope)
            if prepared is None:
                resolved = resolve_params(values, posture)
                prepared = [
                    (
                        rule,
                        _rule_params(rule, resolved),
                        _input_paths(rule),
                    )
                    for rule in posture_rules
                ]
                prepared_for[scope] = prepared
            task_arn = posture.get("task_arn")
            errors = posture.get("errors") or _NO_ERRORS
            for rule, rule_params, paths in prepared:
                if paths is not None and not errors:  # a check of shared parts, all collected
                    status, evidence = _evaluate_shared(rule, rule_params, posture, paths, shared)
                else:
                    status, evidence = _evaluate(rule, rule_params, posture, errors)
                if status == FAILED and exemptions:
                    status = _exempt(evidence, exemptions, rule.id, str(posture.get("workload")), today)
                append(
                    {
                        "task_arn": task_arn,
                        "rule_id": rule.id,
                        "status": status,
                        "severity": rule.severity,
                        "title": rule.title,
                        "evidence": evidence,
                    }
                )
    return _eval_result(results, exemptions, today)


def evaluate_discovery(
    catalog: Catalog,
    discovery: Mapping,
    params: Mapping | None = None,
    today: dt.date | None = None,
) -> EvalResult:
    """Evaluate every ``workload-discovery`` rule on one workload's Discovery
    (``{"account_id", "region", "workload", "destinations": [...]}``, docs/design.md
    section 6). Results are per workload: ``{"workload", "rule_id", "status", "severity",
    "title", "evidence"}``; exemptions match the workload like they do for postures. A rule
    that does not concern the workload (NOT_APPLICABLE: EGR-03 without flow data) gives no
    result, so no finding."""
    overrides = validate_params(params, catalog) if params is not None else {}
    exemptions = overrides.get(EXEMPTIONS) or []
    if exemptions and today is None:
        raise ValueError("evaluate_discovery: 'today' is required when there are exemptions")
    resolved = resolve_params(effective_params(catalog, overrides), discovery)
    workload = str(discovery.get("workload"))
    results: list[dict] = []
    for rule in catalog.discovery_rules:
        status, evidence = evaluate_rule(rule, discovery, resolved)
        if status == NOT_APPLICABLE:  # e.g. EGR-03 without flow data: no result at all
            continue
        if status == FAILED and exemptions:
            status = _exempt(evidence, exemptions, rule.id, workload, today)
        results.append(
            {
                "workload": workload,
                "rule_id": rule.id,
                "status": status,
                "severity": rule.severity,
                "title": rule.title,
                "evidence": evidence,
            }
        )
    return _eval_result(results, exemptions, today)
