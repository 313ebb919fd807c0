"""Security Hub lifecycle of the auditor's findings (interface.md "Security Hub findings").

Pure part: :func:`plan_workload_findings` decides, for one workload, which findings to
import given what was last delivered (the finding states, ``findings.state``): only those
whose content changed (an unchanged estate re-swept imports nothing), each with an
``UpdatedAt`` strictly after the previous one and its original ``CreatedAt`` /
``FirstObservedAt``; a finding no longer produced is imported once more as ``ARCHIVED``.

Writer: :class:`Publisher` queues the findings in the outbox (``findings.state``) first,
imports them with ``BatchImportFindings`` (at most 100 and under 6 MB per call), retries the
``FailedFindings`` with backoff, then saves the state of what was delivered and clears it
from the outbox. What still fails stays in the outbox (counted and logged, never dropped)
until :meth:`Publisher.flush_outbox` delivers it. Whether to publish at all
(``PUBLISH_FINDINGS``) is the caller's decision.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError, ParamValidationError

from fargate_audit.core.errors import FargateAuditError
from fargate_audit.findings.asff import archive_finding, asff_time, finding_content_digest, parse_asff_time
from fargate_audit.findings.state import ARCHIVED, FindingStore, finding_rule_id, finding_state, outbox_sk
from fargate_audit.stores.keys import finding_id_prefix, workload_key_of_finding

MAX_FINDINGS_PER_CALL = 100
MAX_REQUEST_BYTES = 6 * 1024 * 1024 - 64 * 1024  # 6 MB per call, with room for the envelope
MAX_FINDING_BYTES = 240 * 1024
# an unchanged ACTIVE finding is imported again after this long (Security Hub deletes a
# finding not updated for 90 days: _due_for_refresh)
REFRESH_AFTER = timedelta(days=30)

_log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- pure


def strictly_after(now: datetime, previous: str | None) -> str:
    """``now`` in ASFF form, but at least 1 ms after ``previous`` (an ASFF time)."""
    moment = now if now.tzinfo else now.replace(tzinfo=UTC)
    if previous:
        moment = max(moment.astimezone(UTC), parse_asff_time(previous) + timedelta(milliseconds=1))
    return asff_time(moment)


def _latest_time(*times: str | None) -> str | None:
    known = [asff_time(parse_asff_time(t)) for t in times if t]
    return max(known) if known else None


def plan_workload_findings(
    findings_now: Iterable[Mapping[str, Any]],
    states: Mapping[str, Mapping[str, Any]],
    now: datetime,
    pending: Mapping[str, Mapping[str, Any]] | None = None,
) -> tuple[list[dict], dict[str, dict]]:
    """``(to_import, new_states)`` for one workload.

    ``findings_now``: what ``asff.build_findings`` gives for the workload from the results
    of all its running tasks (empty when it has none); ``states``: ``{rule_id: state}``
    (``FindingStore.finding_states``); ``pending``: ``{finding Id: finding}`` still waiting in
    the outbox (its fate unknown: Security Hub may or may not hold it), which forces a
    re-import and raises the ``UpdatedAt`` floor. ``new_states``: ``{rule_id: state}`` of
    the findings in ``to_import``, to save once Security Hub accepted them.
    """
    pending = pending or {}
    produced: dict[str, Mapping[str, Any]] = {}
    for finding in findings_now:
        rule_id = finding_rule_id(finding)
        if rule_id in produced:
            raise ValueError(f"two findings for rule {rule_id} of one workload: {finding['Id']}")
        produced[rule_id] = finding

    to_import: list[dict] = []
    new_states: dict[str, dict] = {}
    # a finding only the outbox holds (its first import was refused) is the workload's too:
    # when it is no longer produced it is archived, or a later flush would deliver it ACTIVE
    # with nothing left to archive it
    waiting_only = {
        finding_rule_id(f): f
        for f in pending.values()
        if finding_rule_id(f) not in states and f.get("RecordState") != ARCHIVED
    }
    for rule_id in sorted(set(produced) | set(states) | set(waiting_only)):
        state = states.get(rule_id)
        finding = produced.get(rule_id)
        if finding is None and state is None:
            base = waiting_only[rule_id]
            out = archive_finding(base, now)
            to_import.append(out)
            new_states[rule_id] = finding_state(out)
            continue
        finding_id = finding["Id"] if finding is not None else state["finding_id"]
        waiting = pending.get(finding_id)
        floor = _latest_time((state or {}).get("updated_at"), (waiting or {}).get("UpdatedAt"))
        if finding is not None:
            if (
                state is not None
                and waiting is None
                and state["digest"] == finding_content_digest(finding)
                and not _due_for_refresh(state, now)
            ):
                continue  # Security Hub already holds this content
            out = dict(finding)
            if state is not None:  # an update: keep the first times, the customer owns Workflow
                out["CreatedAt"] = state.get("created_at") or out.get("CreatedAt")
                out["FirstObservedAt"] = state.get("first_observed_at") or out.get("FirstObservedAt")
                out.pop("Workflow", None)
            elif waiting is not None:  # its first import is still pending: that one's first times
                out["CreatedAt"] = waiting.get("CreatedAt") or out.get("CreatedAt")
                out["FirstObservedAt"] = waiting.get("FirstObservedAt") or out.get("FirstObservedAt")
            out["UpdatedAt"] = strictly_after(now, floor)
        else:
            if state["record_state"] == ARCHIVED and waiting is None:
                continue  # archived once already
            base = state["finding"]
            if waiting is not None and waiting["UpdatedAt"] >= base.get("UpdatedAt", ""):
                base = waiting
            out = archive_finding({**base, "UpdatedAt": floor}, now)
        to_import.append(out)
        new_states[rule_id] = finding_state(out)
    return to_import, new_states


def _due_for_refresh(state: Mapping[str, Any], now: datetime) -> bool:
    """An ACTIVE finding unchanged for ``REFRESH_AFTER`` is imported again (its content the
    same, its UpdatedAt and LastObservedAt new): Security Hub deletes a finding whose
    UpdatedAt is 90 days old, and a long-running workload whose posture never changes would
    otherwise lose its FAILED findings there while the table still holds them ACTIVE."""
    if state.get("record_state") == ARCHIVED:
        return False
    try:
        updated = parse_asff_time(str(state.get("updated_at")))
    except (TypeError, ValueError):
        return True
    return now - updated >= REFRESH_AFTER


def import_batches(findings: list[dict]) -> list[list[dict]]:
    """Consecutive batches of at most 100 findings and under 6 MB each."""
    batches: list[list[dict]] = []
    current: list[dict] = []
    size = 0
    for finding in findings:
        length = len(json.dumps(finding, separators=(",", ":")).encode("utf-8"))
        if current and (len(current) >= MAX_FINDINGS_PER_CALL or size + length > MAX_REQUEST_BYTES):
            batches.append(current)
            current, size = [], 0
        current.append(finding)
        size += length
    if current:
        batches.append(current)
    return batches


def _newest_by_id(findings: Iterable[Mapping[str, Any]]) -> tuple[dict[str, dict], list[dict]]:
    """(``{Id: newest version}``, the older versions)."""
    newest: dict[str, dict] = {}
    older: list[dict] = []
    for finding in findings:
        current = newest.get(finding["Id"])
        if current is None or finding["UpdatedAt"] > current["UpdatedAt"]:
            if current is not None:
                older.append(current)
            newest[finding["Id"]] = dict(finding)
        else:
            older.append(dict(finding))
    return newest, older


# --------------------------------------------------------------------------- writer


@dataclass
class PublishOutcome:
    """Counts of one sync or flush. ``imported``: ACTIVE findings Security Hub accepted;
    ``archived``: ARCHIVED ones accepted; ``unchanged``: produced but not re-imported;
    ``failed``: still refused after the retries; ``pending``: left in the outbox by this
    call (the failed ones); ``superseded``: accepted, but a newer state was already saved
    by a concurrent writer; ``errors``: ``{finding Id: "ErrorCode: message"}``."""

    imported: int = 0
    archived: int = 0
    unchanged: int = 0
    failed: int = 0
    pending: int = 0
    superseded: int = 0
    errors: dict[str, str] = field(default_factory=dict)


class Publisher:
    """Security Hub writer. ``securityhub_client``: a boto3 ``securityhub`` client (for the
    findings' account and Region); ``store``: the
    :class:`~fargate_audit.findings.state.FindingStore` holding finding states and the
    outbox; ``logger``: a Powertools ``Logger`` (or any ``logging``-style logger).

    ``client_for(account, region)`` (organization scale): the ``securityhub`` client of an
    account and Region; each finding is then imported into its own account's Security Hub
    in its own Region (its ``AwsAccountId`` / ``Region``: the caller must be that account),
    one batch per (account, Region). A client that cannot be had (the member role refused:
    a ``FargateAuditError`` naming ``sts:AssumeRole``) fails that scope's findings, which
    stay in the outbox like any undelivered finding; the other scopes are delivered."""

    def __init__(
        self,
        securityhub_client: Any,
        store: FindingStore,
        *,
        max_attempts: int = 3,
        backoff_seconds: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
        logger: Any = None,
        client_for: Callable[[str, str], Any] | None = None,
    ) -> None:
        self.client = securityhub_client
        self.client_for = client_for
        self.store = store
        self.max_attempts = max_attempts
        self.backoff_seconds = backoff_seconds
        self.sleep = sleep
        self.log = logger or _log
        self._outbox_cursor: str | None = None  # where the previous flush stopped reading
        self._cursor_known = False  # read from the table by a new container's first flush

    def sync_workload(
        self,
        workload_key: str,
        findings_now: Iterable[Mapping[str, Any]],
        now: datetime,
        rules: Iterable[str] | None = None,
        excluded_rules: Iterable[str] | None = None,
    ) -> PublishOutcome:
        """Bring Security Hub in line with ``findings_now`` for one workload (all of its
        findings from the results of all its running tasks; empty: none running).

        ``rules``: the rule ids ``findings_now`` speaks for (None: every rule);
        ``excluded_rules``: the rule ids it does not speak for (every other rule: also a
        rule no longer in the catalog, whose finding is archived). The findings of other
        rules are left as they are: the task path does not archive the EGR-01 finding that
        the dns_logs function keeps, nor the other way round."""
        findings_now = list(findings_now)
        prefix = finding_id_prefix(workload_key)
        stray = [f["Id"] for f in findings_now if not f["Id"].startswith(prefix)]
        if stray:
            raise ValueError(f"findings {stray[:3]} are not of workload {workload_key}")
        states = self.store.finding_states(workload_key)
        waiting_list = self.store.pending_outbox(workload_key=workload_key)
        if rules is not None:
            scope = set(rules)
            states = {rule_id: state for rule_id, state in states.items() if rule_id in scope}
            waiting_list = [f for f in waiting_list if finding_rule_id(f) in scope]
            stray = [f["Id"] for f in findings_now if finding_rule_id(f) not in scope]
            if stray:
                raise ValueError(f"findings {stray[:3]} are outside the rules {sorted(scope)}")
        if excluded_rules is not None:
            excluded = set(excluded_rules)
            states = {rule_id: state for rule_id, state in states.items() if rule_id not in excluded}
            waiting_list = [f for f in waiting_list if finding_rule_id(f) not in excluded]
            stray = [f["Id"] for f in findings_now if finding_rule_id(f) in excluded]
            if stray:
                raise ValueError(f"findings {stray[:3]} are of the excluded rules {sorted(excluded)}")
        waiting, _ = _newest_by_id(waiting_list)
        to_import, new_states = plan_workload_findings(findings_now, states, now, pending=waiting)
        produced = {f["Id"] for f in findings_now}
        outcome = PublishOutcome(unchanged=len(produced) - sum(1 for f in to_import if f["Id"] in produced))
        if not to_import:
            return outcome
        self.store.put_outbox(to_import)
        # entries queued earlier for the same findings are superseded by these
        importing = {f["Id"] for f in to_import}
        superseded = [f for f in waiting_list if f["Id"] in importing]
        self._deliver(to_import, {workload_key: new_states}, outcome, superseded)
        return outcome

    def flush_outbox(self, now: datetime, limit: int = 1000, min_age_seconds: float = 0) -> PublishOutcome:
        """Deliver what earlier calls left in the outbox (the newest version of each
        finding; older versions are cleared). Entries queued less than ``min_age_seconds``
        before ``now`` (by their UpdatedAt) are left to the call that queued them."""
        outcome = PublishOutcome()
        waiting = self._read_outbox(limit)
        if not waiting:
            return outcome
        cutoff = asff_time(
            (now if now.tzinfo else now.replace(tzinfo=UTC)) - timedelta(seconds=min_age_seconds)
        )
        newest, older = _newest_by_id(waiting)
        due = [f for f in newest.values() if f["UpdatedAt"] <= cutoff]
        if len(due) < len(newest):  # keep the older versions of what is not due yet
            due_ids = {f["Id"] for f in due}
            older = [f for f in older if f["Id"] in due_ids]
        states: dict[str, dict[str, dict]] = {}
        for finding in due:
            state = finding_state(finding)
            states.setdefault(state["workload_key"], {})[state["rule_id"]] = state
        self._deliver(sorted(due, key=lambda f: f["Id"]), states, outcome, older)
        return outcome

    # ---------------------------------------------------------------- internals

    def _read_outbox(self, limit: int) -> list[dict]:
        """At most ``limit`` queued findings, from where the previous flush stopped
        reading, round to the beginning: entries that fail on every delivery (an account
        whose Security Hub is off, a finding it refuses) cannot hold back for ever those
        sorted after them. The position is kept in the table (a new container, such as a
        sweep's every 6 hours, goes on from it when there is a backlog: its first flush reads
        it only after a full page) and in the publisher between flushes."""
        if not self._cursor_known:
            self._cursor_known = True
            first = self.store.pending_outbox(limit=limit)
            if len(first) < limit:  # the whole outbox: no position to go on from
                self._outbox_cursor = None
                return first
            self._outbox_cursor = self.store.outbox_cursor()
            if self._outbox_cursor is None:
                return self._went_on(first, None, limit)
        cursor = self._outbox_cursor
        waiting = self.store.pending_outbox(limit=limit, after=cursor)
        if cursor is not None and len(waiting) < limit:
            waiting += [
                f for f in self.store.pending_outbox(limit=limit - len(waiting)) if outbox_sk(f) <= cursor
            ]
        return self._went_on(waiting, cursor, limit)

    def _went_on(self, waiting: list[dict], cursor: str | None, limit: int) -> list[dict]:
        """Keep where the next flush starts: after the last entry read when the page was
        full, else the start."""
        following = outbox_sk(waiting[-1]) if len(waiting) >= limit else None
        if following != cursor:
            self.store.save_outbox_cursor(following)
        self._outbox_cursor = following
        return waiting

    def _deliver(
        self,
        findings: list[dict],
        states: Mapping[str, Mapping[str, dict]],
        outcome: PublishOutcome,
        superseded: list[dict],
    ) -> None:
        delivered, errors = self._import(findings)
        cleared: list[dict] = list(superseded)
        for finding in delivered:
            key = workload_key_of_finding(finding["Id"])
            state = states[key][finding_rule_id(finding)]
            if not self.store.save_finding_state(key, state):
                outcome.superseded += 1
            if finding.get("RecordState") == ARCHIVED:
                outcome.archived += 1
            else:
                outcome.imported += 1
            cleared.append(finding)
        if cleared:
            self.store.clear_outbox(outbox_sk(f) for f in cleared)
        outcome.failed += len(errors)
        outcome.pending += len(errors)
        outcome.errors.update(errors)
        for finding_id, message in sorted(errors.items()):
            self.log.warning(
                "finding not delivered; left in the outbox: %s: %s",
                finding_id,
                message,
                extra={"finding_id": finding_id, "error": message},
            )

    def _import(self, findings: list[dict]) -> tuple[list[dict], dict[str, str]]:
        """BatchImportFindings with bounded retries of what failed: (delivered, errors)."""
        delivered: list[dict] = []
        errors: dict[str, str] = {}
        remaining = []
        for finding in findings:
            size = len(json.dumps(finding, separators=(",", ":")).encode("utf-8"))
            if size > MAX_FINDING_BYTES:
                errors[finding["Id"]] = f"TooLarge: {size} bytes exceeds {MAX_FINDING_BYTES}"
            else:
                remaining.append(finding)
        for attempt in range(1, self.max_attempts + 1):
            if attempt > 1:
                delay = self.backoff_seconds * 2 ** (attempt - 2)
                self.sleep(delay * (0.5 + random.random() / 2))
            failed: list[dict] = []
            for batch in self._batches(remaining):
                refused = self._call(batch)
                for finding in batch:
                    if finding["Id"] in refused:
                        errors[finding["Id"]] = refused[finding["Id"]]
                        failed.append(finding)
                    else:
                        errors.pop(finding["Id"], None)
                        delivered.append(finding)
            remaining = failed
            if not remaining:
                break
        return delivered, errors

    def _batches(self, findings: list[dict]) -> list[list[dict]]:
        """The import batches: per (account, Region) of the findings with ``client_for``."""
        if self.client_for is None:
            return import_batches(findings)
        scopes: dict[tuple[str, str], list[dict]] = {}
        for finding in findings:
            scopes.setdefault((finding["AwsAccountId"], finding["Region"]), []).append(finding)
        return [batch for scope in sorted(scopes) for batch in import_batches(scopes[scope])]

    def _call(self, batch: list[dict]) -> dict[str, str]:
        """One BatchImportFindings call: ``{Id: error}`` of the findings it refused."""
        client = self.client
        if self.client_for is not None:
            try:
                client = self.client_for(batch[0]["AwsAccountId"], batch[0]["Region"])
            except FargateAuditError as exc:  # the account's role refused: nothing sent
                return {f["Id"]: str(exc) for f in batch}
        try:
            response = client.batch_import_findings(Findings=batch)
        except ParamValidationError:
            raise  # a malformed finding is a bug, not a delivery failure
        except (ClientError, BotoCoreError) as exc:
            if isinstance(exc, ClientError):
                error = exc.response.get("Error", {})
                message = f"{error.get('Code')}: {error.get('Message')}"
            else:
                message = f"{type(exc).__name__}: {exc}"
            return {f["Id"]: f"BatchImportFindings: {message}" for f in batch}
        return {
            item["Id"]: f"{item.get('ErrorCode')}: {item.get('ErrorMessage')}"
            for item in response.get("FailedFindings") or []
        }
