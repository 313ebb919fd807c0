"""The event pipeline: audit -> record -> publish (design.md section 5).

The same collect -> posture -> engine path as a scan (``collect.collect_tasks`` /
``collect.collect`` then ``scan.evaluate_raw``); what differs is the scope (one task, the
dependents of one changed resource, one cluster) and what happens to the results: each
task's audit is recorded (``record.Recorder``) and the findings of every workload it
touched are recomputed from all of the workload's running tasks and synchronised with
Security Hub (``publish.Publisher``: changes only; a workload without running tasks has
its findings archived).

Entry points (each returns a small JSON-serialisable outcome dict; malformed input raises
``events.EventError``):

- ``handle_task_event(event, rt, now)``   ECS task state change (RUNNING / STOPPED)
- ``handle_config_event(event, rt, now)`` AWS Config change of a network resource
- ``plan_sweep(rt, queue_url, now)``      one SQS message per cluster
- ``sweep_cluster(message, rt, now)``     audit one cluster (a SweepQueue message body)

No clock is read here: ``now`` comes from the caller. AWS clients, the rule catalog, the
params, the recorder, the publisher and the VPC fact cache come in a :class:`Runtime`
built once per Lambda container (``lambda_handlers``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from . import asff, collect, events, record, scan
from .aws import AWS_ERRORS, Clients, failure_message
from .errors import FargateAuditError

DESCRIBE_TASKS_BATCH = 100  # DescribeTasks: 100 tasks, one cluster per call
SEND_MESSAGE_BATCH = 10  # SendMessageBatch: 10 entries per call
FACT_SERVICES = ("ecs.", "ec2.")  # api_calls keys of the reads a posture is built from
FLUSH_MIN_AGE_SECONDS = 60  # outbox entries younger than this belong to their own writer
# DescribeTasks lastStatus values after RUNNING: the task is going or gone.
ENDED_STATUSES = frozenset({"DEACTIVATING", "STOPPING", "DEPROVISIONING", "STOPPED", "DELETED"})

IGNORED, STALE, AUDITED, STOPPED, REJECTED = "ignored", "stale", "audited", "stopped", "rejected"


class SweepError(FargateAuditError):
    """A sweep could not complete (listing failed, messages not queued): the caller fails
    the invocation or the SQS record so that it is retried. ``outcome``: what was done."""

    def __init__(self, message: str, outcome: dict | None = None) -> None:
        super().__init__(message)
        self.outcome = outcome


@dataclass
class Runtime:
    """What every handler needs, built once per container (lambda_handlers.runtime).

    ``clients``: counted boto3 clients; ``region``: the function's region; ``catalog`` /
    ``params``: the rule catalog and the validated RULE_PARAMS (None: defaults);
    ``recorder``: the DynamoDB recorder; ``publisher``: the Security Hub writer, None when
    PUBLISH_FINDINGS is false; ``cache``: network facts reused across invocations.
    """

    clients: Clients
    region: str
    catalog: Any
    params: dict | None
    recorder: record.Recorder
    publisher: Any | None
    cache: collect.FactCache = field(default_factory=collect.FactCache)


# --------------------------------------------------------------------------- helpers


def _cause(kind: str, cause_id: str | None, task_version: Any, event_time: str | None) -> dict:
    version = task_version if isinstance(task_version, int) and not isinstance(task_version, bool) else None
    return {"type": kind, "id": cause_id or "", "task_version": version, "event_time": event_time}


def _cluster_of_task(task_arn: str) -> str | None:
    """The cluster name in a long-format task ARN (``task/<cluster>/<id>``), else None."""
    resource = task_arn.split(":", 5)[-1]
    parts = resource.split("/")
    return parts[1] if len(parts) == 3 and parts[0] == "task" else None


def _cluster_arn(task_arn: str, cluster_name: str) -> str:
    prefix = task_arn.split(":", 5)
    return ":".join(prefix[:5]) + f":cluster/{cluster_name}"


def _publish_summary(outcomes: Iterable[Any]) -> dict:
    total = {"imported": 0, "archived": 0, "unchanged": 0, "failed": 0}
    for outcome in outcomes:
        if outcome is None:
            continue
        for key in total:
            total[key] += getattr(outcome, key, 0)
    return total


class _Batch:
    """Audits of one invocation: recorded one by one, then each touched workload's
    findings are recomputed once (with the fresh audits overriding what the eventually
    consistent workload index may still show)."""

    def __init__(self, rt: Runtime, now: datetime) -> None:
        self.rt, self.now = rt, now
        self.fresh: dict[str, dict[str, dict]] = {}  # workload key -> task ARN -> task
        self.gone: dict[str, set[str]] = {}  # workload key -> stopped task ARNs
        self.touched: list[str] = []  # workload keys to publish, in order
        self.counts = {"audited": 0, "changed": 0, "unchanged": 0, "stale": 0, "stopped": 0}
        self.tasks: list[dict] = []  # per task: {"task_arn", "status", ...} (ids only)

    def _touch(self, key: str | None) -> None:
        if key and key not in self.touched:
            self.touched.append(key)

    def record_audits(self, raw_tasks: list[dict], cause_of) -> None:
        """Evaluate bundles and record each; ``cause_of(raw)`` gives the task's cause."""
        if not raw_tasks:
            return
        evaluation = scan.evaluate_raw(raw_tasks, self.rt.catalog, self.rt.params, self.now)
        by_task: dict[str, list[dict]] = {}
        for result in evaluation.results:
            by_task.setdefault(result["task_arn"], []).append(result)
        raw_by_arn = {raw["task"].get("taskArn"): raw for raw in raw_tasks}
        for posture in evaluation.postures:
            arn = posture["task_arn"]
            results = by_task.get(arn, [])
            outcome = self.rt.recorder.record_audit(posture, results, cause_of(raw_by_arn[arn]), self.now)
            entry = {"task_arn": arn, "status": outcome.status, "workload": posture.get("workload")}
            if outcome.status == record.STALE:
                self.counts["stale"] += 1
                entry["reason"] = outcome.reason
            else:
                self.counts["audited"] += 1
                self.counts["changed" if outcome.changed else "unchanged"] += 1
                entry["rules_changed"] = sorted(outcome.rules)
                self.fresh.setdefault(outcome.workload_key, {})[arn] = {
                    "task_arn": arn,
                    "posture": posture,
                    "results": results,
                }
                self._touch(outcome.workload_key)
            self.tasks.append(entry)

    def stopped(self, task_arn: str, version: Any, stopped_at: Any, cause: dict, key: str | None) -> None:
        workload = self.rt.recorder.mark_stopped(
            task_arn,
            version if isinstance(version, int) else None,
            stopped_at,
            cause,
            self.now,
            workload_key=key,
        )
        self.counts["stopped"] += 1
        self.tasks.append({"task_arn": task_arn, "status": STOPPED})
        if workload:
            self.gone.setdefault(workload, set()).add(task_arn)
            self.fresh.get(workload, {}).pop(task_arn, None)
            self._touch(workload)

    def publish(self) -> dict:
        outcomes = [
            publish_workload(self.rt, key, self.now, self.fresh.get(key), self.gone.get(key))
            for key in self.touched
        ]
        summary = _publish_summary(outcomes)
        summary["workloads"] = len(self.touched) if self.rt.publisher is not None else 0
        return summary


def publish_workload(
    rt: Runtime,
    workload_key: str,
    now: datetime,
    fresh: Mapping[str, dict] | None = None,
    gone: Iterable[str] | None = None,
):
    """Recompute one workload's findings from all of its running tasks and sync them with
    Security Hub; None when publishing is off. ``fresh``: tasks just audited (override
    the index, which is eventually consistent); ``gone``: tasks just stopped."""
    if rt.publisher is None:
        return None
    running = {task["task_arn"]: task for task in rt.recorder.running_tasks(workload_key)}
    running.update(fresh or {})
    for arn in gone or ():
        running.pop(arn, None)
    tasks = [running[arn] for arn in sorted(running)]
    postures = [task["posture"] for task in tasks]
    results = [result for task in tasks for result in task["results"]]
    findings = asff.build_findings(postures, results, rt.catalog, now) if postures else []
    return rt.publisher.sync_workload(workload_key, findings, now)


# --------------------------------------------------------------------------- ECS task events


def handle_task_event(event: Any, rt: Runtime, now: datetime) -> dict:
    """One ECS task state change. RUNNING: audit the task from the event's own detail
    (no DescribeTasks), record it, publish its workload. STOPPED: retire it (its ENI is
    gone: nothing is described) and publish its workload (archived when none runs).
    Anything else, or a task not on Fargate: ignored."""
    parsed = events.parse_task_event(event)
    base = {
        "event_id": parsed["event_id"],
        "task_arn": parsed["task_arn"],
        "last_status": parsed["last_status"],
        "version": parsed["version"],
    }
    if not parsed["fargate"]:
        kind = parsed["launch_type"] or parsed["capacity_provider"] or "unknown"
        return base | {"status": IGNORED, "reason": f"not on Fargate ({kind})"}
    cause = _cause("ecs-event", parsed["event_id"], parsed["version"], parsed["event_time"])
    batch = _Batch(rt, now)

    if parsed["last_status"] == "RUNNING":
        # A duplicate or out-of-order event needs no AWS read: the recorder's order test first.
        reason = record.stale_reason(rt.recorder.latest(parsed["task_arn"]), cause, record.iso(now))
        if reason:
            return base | {"status": STALE, "reason": reason}
        collected = collect.collect_tasks(
            rt.clients, parsed["region"], parsed["cluster_arn"], [parsed["detail"]], cache=rt.cache
        )
        if not collected.raw_tasks:
            reason = collected.skipped[0]["reason"] if collected.skipped else "not audited"
            return base | {"status": IGNORED, "reason": reason}
        batch.record_audits(collected.raw_tasks, lambda raw: cause)
        (task,) = batch.tasks
        if task["status"] == record.STALE:  # a concurrent writer recorded a newer state
            return base | {"status": STALE, "reason": task.get("reason"), "api_calls": collected.api_calls}
        return base | {
            "status": AUDITED,
            "record": task["status"],
            "workload": task["workload"],
            "rules_changed": task["rules_changed"],
            "errors": {f: m for raw in collected.raw_tasks for f, m in raw["errors"].items()},
            "api_calls": collected.api_calls,
            "findings": batch.publish(),
        }

    if parsed["last_status"] == "STOPPED":
        stored = rt.recorder.latest(parsed["task_arn"])
        if stored is not None and stored.get("lifecycle") == record.STOPPED:
            return base | {"status": STALE, "reason": "task already recorded STOPPED"}
        key = record.workload_key_from_cluster_arn(parsed["cluster_arn"], parsed["group"])
        batch.stopped(parsed["task_arn"], parsed["version"], parsed["stopped_at"], cause, key)
        return base | {"status": STOPPED, "workload": key, "findings": batch.publish()}

    return base | {"status": IGNORED, "reason": f"lastStatus {parsed['last_status']}"}


# --------------------------------------------------------------------------- Config events


def _describe_tasks(rt: Runtime, region: str, task_arns: list[str]) -> tuple[dict[str, dict], dict[str, str]]:
    """DescribeTasks (100 per call, per cluster): ({ARN: task}, {ARN: failure}) where a
    failure is AWS's reason for that task (e.g. ``MISSING``: the task is gone) or the
    call's one-line error (``DescribeTasks: Code: message``)."""
    by_cluster: dict[str, list[str]] = {}
    failures: dict[str, str] = {}
    for arn in task_arns:
        cluster = _cluster_of_task(arn)
        if cluster is None:  # short ARN format: the cluster is in the recorded posture
            stored = rt.recorder.latest(arn) or {}
            cluster_arn = (stored.get("posture") or {}).get("cluster_arn")
            if not cluster_arn:
                failures[arn] = "DescribeTasks: the task's cluster is unknown"
                continue
        else:
            cluster_arn = _cluster_arn(arn, cluster)
        by_cluster.setdefault(cluster_arn, []).append(arn)
    ecs = rt.clients.ecs(region)
    found: dict[str, dict] = {}
    for cluster_arn, arns in sorted(by_cluster.items()):
        for start in range(0, len(arns), DESCRIBE_TASKS_BATCH):
            batch = arns[start : start + DESCRIBE_TASKS_BATCH]
            try:
                response = ecs.describe_tasks(cluster=cluster_arn, tasks=batch)
            except AWS_ERRORS as exc:
                message = failure_message(exc, "DescribeTasks")
                failures.update(dict.fromkeys(batch, message))
                continue
            for task in response.get("tasks", []):
                found[task["taskArn"]] = collect.jsonable(task)
            for failure in response.get("failures", []):
                failures[failure.get("arn", "")] = failure.get("reason") or "failure"
    return found, failures


def _audit_described(
    rt: Runtime, batch: _Batch, region: str, task_arns: list[str], cause_of, refresh_vpcs: bool
) -> dict:
    """Describe tasks the recorder holds as running; re-audit those still RUNNING, retire
    those that ended or vanished. Returns {"errors": [...], "api_calls": {...}}."""
    before = rt.clients.counter.snapshot()
    described, failures = _describe_tasks(rt, region, task_arns)
    running, errors = [], []
    for arn in task_arns:
        task = described.get(arn)
        if task is not None and task.get("lastStatus") == "RUNNING":
            running.append(task)
        elif task is not None and task.get("lastStatus") in ENDED_STATUSES:
            cause = cause_of({"task": task})
            batch.stopped(arn, task.get("version"), task.get("stoppedAt"), cause, None)
        elif task is None and failures.get(arn) == "MISSING":  # stopped and long gone
            batch.stopped(arn, None, None, cause_of({"task": {}}), None)
        elif task is None:
            reason = failures.get(arn) or "not returned"
            message = reason if reason.startswith("DescribeTasks: ") else f"DescribeTasks: {reason}: {arn}"
            errors.append({"task_arn": arn, "message": message})
    by_cluster: dict[str, list[dict]] = {}
    for task in running:
        by_cluster.setdefault(task.get("clusterArn") or "", []).append(task)
    for cluster_arn, tasks in sorted(by_cluster.items()):
        collected = collect.collect_tasks(
            rt.clients, region, cluster_arn or None, tasks, cache=rt.cache, refresh_vpcs=refresh_vpcs
        )
        batch.record_audits(collected.raw_tasks, cause_of)
    calls = rt.clients.counter.since(before)  # the fact reads, not the table's requests
    return {"errors": errors, "api_calls": {k: v for k, v in calls.items() if k.startswith(FACT_SERVICES)}}


def handle_config_event(event: Any, rt: Runtime, now: datetime) -> dict:
    """A network resource changed: re-audit the running tasks recorded as depending on it
    (fresh VPC facts: the cache is bypassed and refilled), retire those no longer running,
    publish every workload touched."""
    parsed = events.parse_config_event(event)
    base = {
        "event_id": parsed["event_id"],
        "resource_type": parsed["resource_type"],
        "resource_id": parsed["resource_id"],
        "oversized": parsed["oversized"],
    }
    task_arns = rt.recorder.tasks_for_resource(parsed["resource_id"])
    if not task_arns:
        return base | {"status": IGNORED, "reason": "no running task depends on it", "tasks": 0}
    batch = _Batch(rt, now)

    def cause_of(raw: dict) -> dict:
        return _cause("config-event", parsed["event_id"], raw["task"].get("version"), parsed["event_time"])

    outcome = _audit_described(rt, batch, parsed["region"], task_arns, cause_of, refresh_vpcs=True)
    return base | {
        "status": AUDITED,
        "tasks": len(task_arns),
        **batch.counts,
        "task_results": batch.tasks,
        "errors": outcome["errors"],
        "api_calls": outcome["api_calls"],
        "findings": batch.publish(),
    }


# --------------------------------------------------------------------------- sweep


def plan_sweep(rt: Runtime, queue_url: str, now: datetime, region: str | None = None) -> dict:
    """List every cluster of the region and queue one sweep message per cluster
    (SendMessageBatch, 10 a call). SweepError when listing fails or messages could not
    be queued (after one retry of the failed entries): the invocation is retried."""
    region = region or rt.region
    ecs = rt.clients.ecs(region)
    clusters: list[str] = []
    try:
        paginator = ecs.get_paginator("list_clusters")
        for page in paginator.paginate(PaginationConfig={"PageSize": collect.ECS_PAGE_SIZE}):
            clusters.extend(page.get("clusterArns", []))
    except AWS_ERRORS as exc:
        raise SweepError(failure_message(exc, "ListClusters")) from exc
    clusters = list(dict.fromkeys(clusters))
    sqs = rt.clients.get("sqs", region)
    sent, failed = 0, []
    for start in range(0, len(clusters), SEND_MESSAGE_BATCH):
        chunk = clusters[start : start + SEND_MESSAGE_BATCH]
        entries = [
            {"Id": str(i), "MessageBody": events.sweep_message(collect.account_of(arn) or "", region, arn)}
            for i, arn in enumerate(chunk)
        ]
        for _attempt in range(2):
            try:
                response = sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)
            except AWS_ERRORS as exc:
                raise SweepError(failure_message(exc, "SendMessageBatch")) from exc
            sent += len(response.get("Successful") or [])
            retry = {item["Id"] for item in response.get("Failed") or [] if not item.get("SenderFault")}
            refused = [item for item in response.get("Failed") or [] if item.get("SenderFault")]
            failed += [f"{chunk[int(item['Id'])]}: {item.get('Code')}" for item in refused]
            entries = [entry for entry in entries if entry["Id"] in retry]
            if not entries:
                break
        failed += [f"{chunk[int(entry['Id'])]}: not queued after a retry" for entry in entries]
    if failed:
        raise SweepError(
            f"SendMessageBatch: {len(failed)} of {len(clusters)} sweep messages not queued: {failed[0]}",
            {"clusters": len(clusters), "messages": sent},
        )
    return {"status": "planned", "region": region, "clusters": len(clusters), "messages": sent}


def _known_workloads(rt: Runtime, cluster_arn: str, seen: Iterable[str]) -> list[str]:
    """Workload keys of the cluster the recorder may hold running tasks for: those seen now,
    plus those with an ACTIVE finding (every workload with a running task has some while
    findings are published; the table has no index of running tasks by cluster)."""
    parts = cluster_arn.split(":", 5)
    cluster = [parts[4], parts[3], parts[5].split("/", 1)[1]]  # account, region, cluster name
    keys = dict.fromkeys(seen)
    if rt.publisher is not None:
        for finding in rt.recorder.active_findings():
            key = finding.get("workload_key") or ""
            if key.split("#", 4)[1:4] == cluster:
                keys[key] = None
    return list(keys)


def sweep_cluster(message: Any, rt: Runtime, now: datetime, message_id: str | None = None) -> dict:
    """Audit one cluster (a SweepQueue message): every running Fargate task is collected
    afresh (VPC facts refreshed), evaluated and recorded; tasks the recorder holds as
    running there that are no longer running are retired; every workload touched is
    published; then undelivered findings left in the outbox are flushed.

    A message with ``task_arns`` narrows the sweep to those tasks. SweepError when the
    cluster could not be fully listed or described (the message is retried)."""
    parsed = events.parse_sweep_message(message)
    region, cluster_arn = parsed["region"], parsed["cluster_arn"]
    batch = _Batch(rt, now)

    def cause_of(raw: dict) -> dict:
        return _cause("sweep", message_id, raw["task"].get("version"), None)

    if parsed["task_arns"]:
        outcome = _audit_described(rt, batch, region, parsed["task_arns"], cause_of, refresh_vpcs=True)
        errors, api_calls = outcome["errors"], outcome["api_calls"]
        listed = None
    else:
        collected = collect.collect(
            None,
            regions=[region],
            clusters=[cluster_arn],
            clients=rt.clients,
            cache=rt.cache,
            refresh_vpcs=True,
        )
        errors, api_calls = collected.errors, collected.api_calls
        batch.record_audits(collected.raw_tasks, cause_of)
        listed = {raw["task"].get("taskArn") for raw in collected.raw_tasks}
        if not errors:  # a partial listing proves nothing about the tasks it missed
            for key in _known_workloads(rt, cluster_arn, list(batch.fresh)):
                for task in rt.recorder.running_tasks(key):
                    if task["task_arn"] not in listed:  # no longer RUNNING
                        batch.stopped(
                            task["task_arn"], None, None, _cause("sweep", message_id, None, None), key
                        )
    findings = batch.publish()
    flushed = None
    if rt.publisher is not None:
        flush = rt.publisher.flush_outbox(now, min_age_seconds=FLUSH_MIN_AGE_SECONDS)
        flushed = _publish_summary([flush])
    result = {
        "status": "swept",
        "cluster_arn": cluster_arn,
        "tasks": len(listed) if listed is not None else len(parsed["task_arns"]),
        **batch.counts,
        "api_calls": api_calls,
        "findings": findings,
        "flushed": flushed,
        "errors": errors,
    }
    if errors:
        raise SweepError(f"sweep of {cluster_arn} incomplete: {errors[0].get('message')}", result)
    return result
