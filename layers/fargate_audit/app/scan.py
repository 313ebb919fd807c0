"""The one pipeline: collect -> posture -> engine -> report (docs/design.md section 4).

The CLI, the demo, the benchmarks and the Lambdas all come through here; they differ in
scope and in what they do with the outcome. This is the only module that wires the
collector, the normaliser and the engine together. It reads the clock (when ``now`` is
not given) and measures the scan's duration; everything it calls below it is pure.
"""

from __future__ import annotations

import gc
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TextIO

from fargate_audit.core import engine, posture, report, rules
from fargate_audit.core.errors import FargateAuditError
from fargate_audit.edge import collect
from fargate_audit.edge.accounts import AssumeRoleError, MemberSessions
from fargate_audit.edge.aws import AWS_ERRORS

Progress = Callable[[int, int, str], None]


@dataclass
class Evaluation:
    """Postures and results of a set of raw task bundles (``evaluate_raw``)."""

    postures: list[dict]
    results: list[dict]
    expired_exemptions: list[dict] = field(default_factory=list)


@dataclass
class ScanOutcome:
    postures: list[dict]
    results: list[dict]
    report_args: dict  # report.build_report's keyword arguments beside postures and results
    collect_result: collect.CollectResult
    now: datetime  # the scan's time: report.generated_at, exemption expiry, ASFF timestamps
    expired_exemptions: list[dict] = field(default_factory=list)
    _report: dict | None = field(default=None, repr=False)

    @property
    def report(self) -> dict:
        """The scan report dict (built on first use: a JSON output streams instead)."""
        if self._report is None:
            self._report = report.build_report(self.postures, self.results, **self.report_args)
        return self._report

    def report_view(self) -> dict:
        """The report for reading only (the table): the results' evidence is not copied."""
        if self._report is not None:
            return self._report
        return report.build_report(self.postures, self.results, json_ready=False, **self.report_args)

    def write_report(self, stream: TextIO) -> None:
        """The report as JSON on ``stream``, streamed (report.write_report)."""
        report.write_report(stream, self.postures, self.results, **self.report_args)


def _now(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    return now if now.tzinfo else now.replace(tzinfo=UTC)


def evaluate_raw(
    raw_tasks: list[dict], catalog: rules.Catalog, params: dict | None, now: datetime | None
) -> Evaluation:
    """Raw task bundles (design.md section 1) -> postures and one result per task and rule.

    Shared by the scan and the event path. ``now`` decides which exemptions have expired.
    """
    moment = _now(now)
    memo: dict = {}  # derived network facts shared by the tasks of a subnet / VPC / group set
    postures = [posture.build_posture(raw, memo) for raw in raw_tasks]
    postures.sort(key=lambda p: p["task_arn"] or "")
    outcome = engine.evaluate(catalog, postures, params=params, today=moment.date())
    return Evaluation(
        postures=postures, results=list(outcome.results), expired_exemptions=list(outcome.expired_exemptions)
    )


def run_scan(
    session,
    regions: list[str] | None = None,
    clusters: list[str] | None = None,
    params: dict | None = None,
    catalog: rules.Catalog | None = None,
    now: datetime | None = None,
    progress: Progress | None = None,
) -> ScanOutcome:
    """Audit every running Fargate task in scope, read-only.

    ``session``: a boto3 Session made by the caller; ``regions``/``clusters``: the scope
    (None: the session's region / every cluster); ``params``: a loaded params dict
    (params.load_params) or None for the defaults; ``catalog``: rules.load_catalog() when
    None; ``progress(done, total, stage)``: optional, called while collecting.
    Raises CredentialsError / ScanError (collector) and ConfigError (catalog).
    """
    started = time.monotonic()
    moment = _now(now)
    if catalog is None:
        catalog = rules.load_catalog()
    with engine.cyclic_gc_paused():
        collected = collect.collect(session, regions=regions, clusters=clusters, progress=progress)
        if not collected.scope.get("accounts"):
            _own_account_in_scope(session, collected)
        evaluation = evaluate_raw(collected.raw_tasks, catalog, params, moment)
        # The raw responses are no longer needed once they are postures: release them
        # before the report is built (a third of a large scan's peak memory).
        collected.raw_tasks = []
    return _outcome(
        evaluation.postures, evaluation.results, collected, evaluation.expired_exemptions, moment, started
    )


def _own_account_in_scope(session, collected) -> None:
    """A scan that found no cluster still names the account it audited (``scope.accounts``;
    it was []): the session's, by sts:GetCallerIdentity (no permission needed; counted),
    made only in that case. Unknown when that call fails: the list stays empty."""
    from fargate_audit.edge.aws import client

    region = (collected.scope.get("regions") or [getattr(session, "region_name", None)])[0]
    try:
        account = client(session, "sts", region).get_caller_identity()["Account"]
    except AWS_ERRORS:
        return
    finally:
        calls = dict(collected.api_calls or {})
        calls["sts.GetCallerIdentity"] = calls.get("sts.GetCallerIdentity", 0) + 1
        collected.api_calls = calls
    collected.scope["accounts"] = [account]


def _outcome(postures, results, collected, expired_exemptions, moment, started, scopes=None) -> ScanOutcome:
    """The ScanOutcome of a scan's postures and results and what its collection gave; the
    report's ``summary.scopes`` when ``scopes`` is given (an organization scan)."""
    report_args = {
        "now": moment,
        "scope": collected.scope,
        "skipped": collected.skipped,
        "api_calls": collected.api_calls,
        "duration_s": time.monotonic() - started,
        "errors": collected.errors,
        "expired_exemptions": expired_exemptions,
    }
    if scopes is not None:
        report_args["scopes"] = scopes
    return ScanOutcome(
        postures=postures,
        results=results,
        report_args=report_args,
        collect_result=collected,
        now=moment,
        expired_exemptions=expired_exemptions,
    )


# ---------------------------------------------------------------------------- organization


@dataclass
class ScopeResult:
    """What one (account, region) of an organization scan gave: its postures and results,
    or the one line saying why it could not be scanned (``error``)."""

    account_id: str
    region: str
    error: str | None = None
    postures: list[dict] = field(default_factory=list)
    results: list[dict] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)
    errors: list[dict] = field(default_factory=list)
    clusters: list[str] = field(default_factory=list)
    api_calls: dict[str, int] = field(default_factory=dict)
    expired_exemptions: list[dict] = field(default_factory=list)
    looked_up: list[str] = field(default_factory=list)  # the given clusters this scope looked for
    unfound: dict[str, dict] = field(default_factory=dict)  # those it did not find: {ref: error}


# account_done(account_id, its scopes, accounts done, accounts in all): called once per
# account as it finishes, from the worker thread that scanned it.
AccountDone = Callable[[str, list[ScopeResult], int, int], None]


def _assume(sessions: MemberSessions, account_id: str):
    """(session, None), or (None, the error line) when the account's role is refused."""
    try:
        return sessions.get(account_id), None
    except AssumeRoleError as exc:
        return None, str(exc)


def _scan_scope(session, account_id, region, clusters, catalog, params, moment, names=True) -> ScopeResult:
    """One (account, region) of an organization scan. ``names``: cluster names are looked
    up here too (a region asked for), not only the ARNs naming it (a region an ARN joined)."""
    scope = ScopeResult(account_id, region)
    if clusters:  # a cluster ARN is looked for in its own account and region only
        scope.looked_up = [
            ref
            for ref in clusters
            if collect.cluster_in_scope(ref, account_id, region) and (names or collect.arn_region(ref))
        ]
        if not scope.looked_up:
            return scope  # none of the given clusters can be here: nothing to read
    try:
        collected = collect.collect(
            session, regions=[region], clusters=scope.looked_up or None, report_missing_clusters=False
        )
    # every call of the region refused, or credentials rejected
    except (FargateAuditError, *AWS_ERRORS) as exc:
        # the refused call as the sweep planner names it (ecs:ListClusters: Code: message)
        scope.error = " ".join(str(getattr(exc, "refused", None) or exc).split())
        return scope
    evaluation = evaluate_raw(collected.raw_tasks, catalog, params, moment)
    collected.raw_tasks = []
    scope.postures, scope.results = evaluation.postures, evaluation.results
    scope.expired_exemptions = evaluation.expired_exemptions
    scope.skipped = collected.skipped
    scope.errors = [{"account_id": account_id, **error} for error in collected.errors]
    scope.clusters = list(collected.scope.get("clusters") or [])
    scope.api_calls = collected.api_calls
    scope.unfound = collected.unfound_clusters
    return scope


def _unfound_clusters(scopes: list[ScopeResult], clusters: list[str] | None) -> list[dict]:
    """The given clusters found in no scope that could look for them (one error each, as
    the first such scope saw it), and the cluster ARNs naming an account and region the
    scan does not cover: a cluster missing from some accounts is no error, from all is."""
    errors: list[dict] = []
    for ref in dict.fromkeys(clusters or ()):
        searched = [s for s in scopes if ref in s.looked_up and s.error is None]
        misses = [s for s in searched if ref in s.unfound]
        if searched and len(misses) == len(searched):
            errors.append({"account_id": misses[0].account_id, **misses[0].unfound[ref]})
        elif not any(ref in s.looked_up for s in scopes):
            errors.append(
                {
                    "account_id": collect.account_of(ref) or "",
                    "call": "DescribeClusters",
                    "region": ref.split(":")[3] if ref.count(":") == 5 else "",
                    "resource": ref,
                    "message": f"cluster {ref} is not in the accounts and regions scanned",
                }
            )
    return errors


def _reclaim(lock: threading.Lock) -> None:
    """After a scope: free the reference cycles it left (its botocore clients and
    sessions; the paused collector would keep them: bench/bench_org.py's 20 accounts x 2
    regions peak at 239 MB with this, 253 MB without), then freeze what survives (the
    postures and results kept for the report) so the next collection walks only what the
    next scope allocates, not everything scanned so far."""
    with lock:
        gc.collect()
        gc.freeze()


def scan_accounts(
    sessions: MemberSessions,
    accounts: list[str],
    regions: list[str],
    clusters: list[str] | None = None,
    params: dict | None = None,
    catalog: rules.Catalog | None = None,
    now: datetime | None = None,
    jobs: int = 8,  # the CLI passes its --jobs (cli.commands.DEFAULT_JOBS)
    account_done: AccountDone | None = None,
) -> ScanOutcome:
    """An organization scan (interface.md "Organization scale"): every region of every
    account, ``jobs`` accounts at a time, each account through ``sessions`` (one
    AssumeRole per account; a refusal becomes the error of each of its scopes, the
    others are scanned as usual). One report: tasks and results of every scope, sorted as
    a single-account scan's, and ``summary.scopes``. Each worker makes its own clients
    (botocore clients are not shared between threads)."""
    started = time.monotonic()
    moment = _now(now)
    if catalog is None:
        catalog = rules.load_catalog()
    accounts = list(dict.fromkeys(accounts))
    regions = list(dict.fromkeys(regions))
    # a cluster ARN is read in the region it names, which joins the scan for its account
    joined: dict[str, list[str]] = {}
    for ref in clusters or ():
        region = collect.arn_region(ref)
        if (
            region
            and region not in regions
            and region not in joined.setdefault(collect.account_of(ref) or "", [])
        ):
            joined[collect.account_of(ref) or ""].append(region)
    assumed_before = sessions.assumed
    done = [0]
    lock = threading.Lock()

    def one_account(account_id: str) -> list[ScopeResult]:
        session, error = _assume(sessions, account_id)
        own = regions + joined.get(account_id, [])
        if error is not None:
            scopes = [ScopeResult(account_id, region, error=error) for region in own]
        else:
            scopes = []
            for region in own:
                names = region in regions
                scopes.append(
                    _scan_scope(session, account_id, region, clusters, catalog, params, moment, names)
                )
                _reclaim(lock)
        with lock:
            done[0] += 1
            finished = done[0]
        if account_done is not None:
            account_done(account_id, scopes, finished, len(accounts))
        return scopes

    workers = max(1, min(jobs, len(accounts) or 1))
    try:
        with engine.cyclic_gc_paused(), ThreadPoolExecutor(max_workers=workers) as pool:
            per_account = list(pool.map(one_account, accounts))
    finally:
        gc.unfreeze()
    scopes = [scope for account_scopes in per_account for scope in account_scopes]
    unfound = _unfound_clusters(scopes, clusters)
    every_region = list(dict.fromkeys([*regions, *(r for a in accounts for r in joined.get(a, []))]))
    return _merge(scopes, accounts, every_region, moment, started, sessions.assumed - assumed_before, unfound)


def _merge(
    scopes: list[ScopeResult],
    accounts: list[str],
    regions: list[str],
    moment,
    started,
    assumed: int,
    unfound: list[dict] = (),
) -> ScanOutcome:
    postures = sorted((p for s in scopes for p in s.postures), key=lambda p: p["task_arn"] or "")
    results = sorted((r for s in scopes for r in s.results), key=lambda r: (r["task_arn"], r["rule_id"]))
    api_calls: Counter = Counter()
    for scope in scopes:
        api_calls.update(scope.api_calls)
    if assumed:
        api_calls["sts.AssumeRole"] += assumed
    expired: dict[str, dict] = {}
    for scope in scopes:  # every scope ignores the same expired exemptions: list them once
        for item in scope.expired_exemptions:
            expired.setdefault(repr(sorted(item.items(), key=str)), item)
    merged = collect.CollectResult(
        skipped=[item for s in scopes for item in s.skipped],
        scope={
            "accounts": sorted(accounts),
            "regions": regions,
            "clusters": sorted({c for s in scopes for c in s.clusters}),
        },
        errors=[error for s in scopes for error in s.errors] + list(unfound),
        api_calls=dict(api_calls),
    )
    summary_scopes = [{"account_id": s.account_id, "region": s.region, "error": s.error} for s in scopes]
    for scope in scopes:  # the merged lists hold them now
        scope.postures, scope.results = [], []
    return _outcome(postures, results, merged, list(expired.values()), moment, started, summary_scopes)
