"""The one pipeline: collect -> posture -> engine -> report (docs/design.md section 4).

The CLI, the demo, the benchmarks and the Lambdas all come through here; they differ in
scope and in what they do with the outcome. This is the only module that wires the
collector, the normaliser and the engine together. It reads the clock (when ``now`` is
not given) and measures the scan's duration; everything it calls below it is pure.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TextIO

from fargate_audit.core import engine, posture, report, rules
from fargate_audit.edge import collect

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
        evaluation = evaluate_raw(collected.raw_tasks, catalog, params, moment)
        # The raw responses are no longer needed once they are postures: release them
        # before the report is built (a third of a large scan's peak memory).
        collected.raw_tasks = []
    report_args = {
        "now": moment,
        "scope": collected.scope,
        "skipped": collected.skipped,
        "api_calls": collected.api_calls,
        "duration_s": time.monotonic() - started,
        "errors": collected.errors,
        "expired_exemptions": evaluation.expired_exemptions,
    }
    return ScanOutcome(
        postures=evaluation.postures,
        results=evaluation.results,
        report_args=report_args,
        collect_result=collected,
        now=moment,
        expired_exemptions=evaluation.expired_exemptions,
    )
