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
- ``plan_sweep(rt, queue_url, now)``      one SQS message per page of 100 tasks of each
  cluster (of every audited account and region: organization scale)
- ``sweep_cluster(message, rt, now)``     audit one page of a cluster's tasks, or a whole
  cluster (a SweepQueue message body)
- ``handle_dns_logs(event, rt, now)``     a batch of Route 53 Resolver query logs (CloudWatch
  Logs subscription): destinations and DNS answers per workload, then EGR-01 and EGR-03
  per workload touched
- ``handle_flow_logs(event, rt, now)``    a batch of VPC flow-log records (CloudWatch Logs
  subscription), read by its log group's flow log format (``ec2:DescribeFlowLogs``,
  cached): internet destinations with protocol, port and bytes per workload, then EGR-01
  and EGR-03 per workload touched

No clock is read here: ``now`` comes from the caller. AWS clients, the rule catalog, the
params, the recorder, the publisher and the VPC fact cache come in a :class:`Runtime`
built once per Lambda container (``lambda_handlers``).

Organization scale (interface.md): with ``rt.accounts`` set, the facts of an event, sweep
message or finding of account A are read (and its findings imported) through A's member
role (``rt.clients_for(A)``: one AssumeRole per account per container); the table and the
queues stay the function's own. An account whose role is refused raises
:class:`UnreachableScope` before anything is read or written for it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from fargate_audit.app import dnslogs, events, flowlogs, scan
from fargate_audit.core import egress, engine
from fargate_audit.core.egress import duration_seconds
from fargate_audit.core.errors import FargateAuditError, ScanError
from fargate_audit.core.params import effective_params
from fargate_audit.edge import collect, flowlog_lookup, queue
from fargate_audit.edge.accounts import AccountClients, AssumeRoleError, AuditedAccounts, partition_of
from fargate_audit.edge.aws import (
    AWS_ERRORS,
    Clients,
    describe_error,
    error_code,
    failure_message,
    is_transient,
    transient_failure,
)
from fargate_audit.findings import asff
from fargate_audit.findings.state import FindingStore
from fargate_audit.stores import keys, record
from fargate_audit.stores import table as dynamo
from fargate_audit.stores.discovery import DiscoveryStore

# api_calls keys of the fact reads
FACT_SERVICES = ("ecs.", "ec2.", "route53resolver.", "elasticloadbalancing.", "wafv2.")
FLUSH_MIN_AGE_SECONDS = 60  # outbox entries younger than this belong to their own writer
# Every event invocation also delivers a bounded part of the outbox (one BatchImportFindings
# call's worth), so findings left undelivered are not waiting for the next sweep only.
EVENT_FLUSH_LIMIT = 100
SWEEP_FLUSH_LIMIT = 1000
# DescribeTasks lastStatus values after RUNNING: the task is going or gone.
ENDED_STATUSES = frozenset({"DEACTIVATING", "STOPPING", "DEPROVISIONING", "STOPPED", "DELETED"})

IGNORED, STALE, AUDITED, STOPPED, REJECTED = "ignored", "stale", "audited", "stopped", "rejected"
QUEUED = "queued"  # a config event's dependent tasks handed to the sweep workers


class ForeignEventError(FargateAuditError):
    """An event or message from an account or region outside the allowlist (the text says
    which). Not malformed: it is rejected and counted, never retried."""

    def __init__(self, message: str, account: str | None = None, region: str | None = None) -> None:
        super().__init__(message)
        self.account = account
        self.region = region


class UnreachableScope(FargateAuditError):
    """An audited account (in a region) whose facts cannot be read: its member role was
    refused. The text names the refused call (``sts:AssumeRole: AccessDenied: ... (role)``);
    nothing is read or written for it."""

    def __init__(self, message: str, account: str, region: str | None) -> None:
        super().__init__(message)
        self.account = account
        self.region = region


class RetryLater(FargateAuditError):
    """Part of an event's work failed for a reason a later try may not meet (throttling
    past the SDK's retries, a transient 5xx): what was done is kept, and the invocation
    fails so that Lambda retries the event."""


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
    ``recorder``: the task history store; ``findings``: the finding state and outbox store
    (both on one ``stores.table.Table``); ``publisher``: the Security Hub writer (on
    ``findings``), None when PUBLISH_FINDINGS is false; ``cache``: network facts reused across invocations.

    Origins (``origin_error``): ``allowed_accounts`` / ``allowed_regions`` (ALLOWED_ACCOUNTS /
    ALLOWED_REGIONS; empty: the account the runtime reads, i.e. ``audit_role_account`` when
    reads go through AUDIT_ROLE_ARN, else ``own_account``, and its own region);
    ``own_account`` is set by the handlers from the Lambda context. ``events_dlq_url``:
    where malformed events go (EVENTS_DLQ_URL; None: logged and counted only).
    ``sweep_queue_url``: the sweep queue (SWEEP_QUEUE_URL), where a Config change with more
    dependent tasks than one DescribeTasks call hands them out in pages (None: audited inline).

    Organization scale (AUDITED_ACCOUNTS / ORGANIZATIONS_ROLE_ARN; None: one account, as
    before): ``audited``: the audited accounts (events are accepted from those only,
    narrowed further by ``allowed_accounts`` when that is set too); ``accounts``: each
    account's clients through its member role; ``audited_regions``: the regions swept and
    accepted (AUDITED_REGIONS; empty: ``allowed_regions``, else the function's region).

    VPC flow logs (``handle_flow_logs``): ``flow_log_format``: FLOW_LOG_FORMAT (None:
    unset), the format of a log group no flow log of the account delivers to (and the one
    to read where flow logs of different formats do); ``flow_private``: the destinations
    that are not internet; ``flow_log_cache``: each log group's flow logs
    (``ec2:DescribeFlowLogs``), kept across invocations.
    """

    clients: Clients
    region: str
    catalog: Any
    params: dict | None
    recorder: record.Recorder
    findings: FindingStore
    publisher: Any | None
    cache: collect.FactCache = field(default_factory=collect.FactCache)
    allowed_accounts: frozenset[str] = frozenset()
    allowed_regions: frozenset[str] = frozenset()
    own_account: str | None = None
    audit_role_account: str | None = None
    events_dlq_url: str | None = None
    sweep_queue_url: str | None = None
    audited: AuditedAccounts | None = None
    accounts: AccountClients | None = None
    audited_regions: frozenset[str] = frozenset()
    caches: dict[str, collect.FactCache] = field(default_factory=dict)
    flow_log_format: str | None = None  # FLOW_LOG_FORMAT; None: unset
    flow_private: tuple = flowlogs.PRIVATE_NETWORKS  # + FLOW_LOG_VPC_CIDRS
    flow_log_cache: flowlog_lookup.FlowLogCache = field(default_factory=flowlog_lookup.FlowLogCache)

    def clients_for(self, account: str | None) -> Clients:
        """The clients that read ``account``'s facts: its member role's (AssumeRoleError
        when refused), the function's own for its own account or a one-account stack."""
        if self.accounts is None or not account:
            return self.clients
        return self.accounts.get(account)

    def cache_for(self, account: str | None) -> collect.FactCache:
        """The fact cache of ``account`` (one per account: ids never meet across accounts)."""
        if self.accounts is None or not account or account == self.own_account:
            return self.cache
        if account not in self.caches:
            self.caches[account] = collect.FactCache(self.cache.ttl, clock=self.cache.now)
        return self.caches[account]


# --------------------------------------------------------------------------- helpers


def allowed_accounts(rt: Runtime) -> frozenset[str]:
    """The accounts events may come from: the audited accounts (organization scale; within
    the explicit allowlist when there is one too), else the explicit allowlist, else the
    account the runtime reads (the audit role's when reads go through one, else its own)."""
    if rt.audited is not None:
        audited = frozenset(rt.audited.ids())
        return audited & rt.allowed_accounts if rt.allowed_accounts else audited
    if rt.allowed_accounts:
        return rt.allowed_accounts
    account = rt.audit_role_account or rt.own_account
    return frozenset({account}) if account else frozenset()


def allowed_regions(rt: Runtime) -> frozenset[str]:
    """The regions events may come from, and the sweep covers: the audited regions
    (organization scale; within the explicit allowlist when there is one too, as for
    accounts), else the explicit allowlist, else the function's own region."""
    if rt.audited_regions:
        return rt.audited_regions & rt.allowed_regions if rt.allowed_regions else rt.audited_regions
    return rt.allowed_regions or frozenset({rt.region})


def _listing(values: frozenset[str]) -> str:
    shown = sorted(values)
    return ", ".join(shown) if len(shown) <= 10 else ", ".join(shown[:10]) + f", ... {len(shown)} in all"


def scope_clients(rt: Runtime, account: str, region: str | None) -> Clients:
    """``rt.clients_for(account)``, a refused role raised as :class:`UnreachableScope`."""
    try:
        return rt.clients_for(account)
    except AssumeRoleError as exc:
        raise UnreachableScope(str(exc), account, region) from exc


def origin_error(rt: Runtime, account: Any, region: Any) -> str | None:
    """Why an event of ``account`` / ``region`` is refused, or None. ``aws.*`` events cannot
    be forged with PutEvents, but a cross-account event bus can forward another account's."""
    accounts = allowed_accounts(rt)
    if not accounts:
        return "the function's own account is unknown (no Lambda context) and ALLOWED_ACCOUNTS is empty"
    if account not in accounts:
        return f"account {account} is not in the allowed accounts ({_listing(accounts)})"
    regions = allowed_regions(rt)
    if region not in regions:
        return f"region {region} is not in the allowed regions ({_listing(regions)})"
    return None


def check_origin(rt: Runtime, kind: str, *origins: tuple[Any, Any]) -> None:
    """ForeignEventError unless every (account, region) pair is allowed."""
    for account, region in origins:
        reason = origin_error(rt, account, region)
        if reason:
            raise ForeignEventError(f"{kind}: {reason}", account=account, region=region)


def flush_outbox(rt: Runtime, now: datetime, limit: int = EVENT_FLUSH_LIMIT) -> dict | None:
    """Deliver up to ``limit`` findings an earlier invocation left in the outbox (those
    queued at least FLUSH_MIN_AGE_SECONDS ago); None when publishing is off."""
    if rt.publisher is None:
        return None
    outcome = rt.publisher.flush_outbox(now, limit=limit, min_age_seconds=FLUSH_MIN_AGE_SECONDS)
    return _publish_summary([outcome]) | {"pending": outcome.pending}


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
        self.unrecorded: list[dict] = []  # {"task_arn", "message"}: too large to record

    def _touch(self, key: str | None) -> None:
        if key and key not in self.touched:
            self.touched.append(key)

    def record_audits(self, raw_tasks: list[dict], cause_of, stored: Mapping[str, Any] | None = None) -> None:
        """Evaluate bundles and record each; ``cause_of(raw)`` gives the task's cause;
        ``stored``: ``{task ARN: LATEST}`` already read (those are not read again)."""
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
            known = {"stored": stored[arn]} if stored and arn in stored else {}
            try:
                outcome = self.rt.recorder.record_audit(
                    posture, results, cause_of(raw_by_arn[arn]), self.now, **known
                )
            except record.ItemTooLarge as exc:  # this task alone: its neighbours are recorded
                self.unrecorded.append({"task_arn": arn, "message": str(exc)})
                continue
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
                if self.rt.publisher is None and (outcome.status == record.CREATED or outcome.moved_from):
                    # no finding state will name the workload: the registry does (plan_sweep)
                    self.rt.recorder.register_workload(outcome.workload_key)
                if outcome.moved_from:  # recorded in another workload before: retired from it
                    self.gone.setdefault(outcome.moved_from, set()).add(arn)
                    self._touch(outcome.moved_from)
            self.tasks.append(entry)

    def stopped(
        self, task_arn: str, version: Any, stopped_at: Any, cause: dict, key: str | None, **known: Any
    ) -> None:
        """Retire a task; ``known``: ``stored=`` its LATEST when already read. One already
        recorded STOPPED is counted stale, not stopped again (its workload was published
        when it stopped)."""
        outcome = self.rt.recorder.retire(
            task_arn,
            version if isinstance(version, int) else None,
            stopped_at,
            cause,
            self.now,
            workload_key=key,
            **known,
        )
        if outcome.status == record.STALE:
            self.counts["stale"] += 1
            self.tasks.append({"task_arn": task_arn, "status": record.STALE, "reason": outcome.reason})
            return
        workload = outcome.workload_key
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
    # a recorded result of a rule no longer in the catalog (a release retired it, a custom
    # catalog left it out) makes no finding: its finding, no longer produced, is archived
    known = set(rt.catalog.ids)
    results = [result for task in tasks for result in task["results"] if result["rule_id"] in known]
    findings = asff.build_findings(postures, results, rt.catalog, now) if postures else []
    # While tasks run, the workload-discovery findings (EGR-01, EGR-03) are the log
    # functions' to keep; every other finding is this path's (a retired rule's too, which is
    # archived); once none runs, every finding of the workload is archived.
    excluded = [rule.id for rule in rt.catalog.discovery_rules] if postures else None
    return rt.publisher.sync_workload(workload_key, findings, now, excluded_rules=excluded)


# --------------------------------------------------------------------------- ECS task events


def handle_task_event(event: Any, rt: Runtime, now: datetime) -> dict:
    """One ECS task state change. RUNNING: audit the task from the event's own detail
    (no DescribeTasks), record it, publish its workload. STOPPED: retire it (its ENI is
    gone: nothing is described) and publish its workload (archived when none runs).
    Anything else, or a task not on Fargate: ignored."""
    parsed = events.parse_task_event(event)
    check_origin(rt, events.TASK_EVENT, (parsed["account"], parsed["region"]))
    clients = scope_clients(rt, parsed["account"], parsed["region"])
    outcome = _task_event(parsed, rt, now, clients)
    if outcome["status"] in (AUDITED, STALE, STOPPED):
        outcome["flushed"] = flush_outbox(rt, now)
    return outcome


def _resync_redelivery(rt: Runtime, stored: Mapping[str, Any] | None, parsed: dict, now: datetime) -> dict:
    """The very event that wrote the stored state, delivered again: Lambda retrying an
    invocation that failed after recording (e.g. while queueing its findings) or EventBridge
    delivering twice. Its workload is published again (changes only: nothing is imported
    when Security Hub already holds it), so a retry completes what the failure left."""
    previous = (stored or {}).get("cause") or {}
    key = (stored or {}).get("workload_key")
    if not key or rt.publisher is None or previous.get("id") != parsed["event_id"]:
        return {}
    return {"findings": _publish_summary([publish_workload(rt, key, now)]) | {"workloads": 1}}


def _fresher_than(stored: Mapping[str, Any] | None, cache, now: datetime) -> dict:
    """``collect_tasks`` arguments that refetch the VPC facts the cache took before the
    task's recorded audit (``observed_at``): ``{}`` for a task not audited yet."""
    text = (stored or {}).get("observed_at")
    if not text or cache is None:
        return {}
    try:
        observed = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return {}
    if observed.tzinfo is None:
        observed = observed.replace(tzinfo=UTC)
    age = max(0.0, (now - observed).total_seconds())
    return {"refresh_vpcs": True, "refreshed_since": cache.now() - age}


def _task_event(parsed: dict, rt: Runtime, now: datetime, clients: Clients) -> dict:
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
        stored = rt.recorder.latest(parsed["task_arn"])
        reason = record.stale_reason(stored, cause, dynamo.iso(now))
        if reason:
            return base | {"status": STALE, "reason": reason} | _resync_redelivery(rt, stored, parsed, now)
        cache = rt.cache_for(parsed["account"])
        # a newer version of a task already audited: no VPC facts older than that audit (a
        # Config re-audit in another container may have judged fresher ones; these could only
        # move its posture back); a task's first audit: none older than the latest Config
        # change handled in its region (it may have come before this event)
        if stored is None:
            changed = rt.recorder.facts_changed_at(parsed["region"])
            fresher = _fresher_than({"observed_at": changed} if changed else None, cache, now)
        else:
            fresher = _fresher_than(stored, cache, now)
        collected = collect.collect_tasks(
            clients, parsed["region"], parsed["cluster_arn"], [parsed["detail"]], cache=cache, **fresher
        )
        if not collected.raw_tasks:
            reason = collected.skipped[0]["reason"] if collected.skipped else "not audited"
            return base | {"status": IGNORED, "reason": reason}
        # the LATEST just read is the one the audit plans on (read again only on a conflict)
        batch.record_audits(collected.raw_tasks, lambda raw: cause, stored={parsed["task_arn"]: stored})
        if batch.unrecorded:  # the event's one task: nothing else to keep
            raise record.ItemTooLarge(batch.unrecorded[0]["message"])
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
            resync = _resync_redelivery(rt, stored, parsed, now)
            return base | {"status": STALE, "reason": "task already recorded STOPPED"} | resync
        key = keys.workload_key_from_cluster_arn(parsed["cluster_arn"], parsed["group"])
        batch.stopped(parsed["task_arn"], parsed["version"], parsed["stopped_at"], cause, key, stored=stored)
        _, _, cluster_name, group = keys.workload_parts(key)  # as an audit names it: cluster/group
        return base | {"status": STOPPED, "workload": f"{cluster_name}/{group}", "findings": batch.publish()}

    return base | {"status": IGNORED, "reason": f"lastStatus {parsed['last_status']}"}


# --------------------------------------------------------------------------- Config events


def _describe_tasks(
    rt: Runtime,
    clients: Clients,
    region: str,
    task_arns: list[str],
    account: str | None = None,
    page_cluster: str | None = None,
) -> tuple[dict[str, dict], dict[str, str]]:
    """The tasks grouped by cluster (a short ARN's: ``page_cluster``, the cluster a sweep
    page was listed from, else the one its recorded posture names), then
    ``collect.describe_tasks``: ({ARN: task}, {ARN: failure})."""
    by_cluster: dict[str, list[str]] = {}
    failures: dict[str, str] = {}
    for arn in task_arns:
        cluster = _cluster_of_task(arn)
        if cluster is None:  # short ARN format (arn:...:task/ID): the ARN names no cluster
            stored = {} if page_cluster else rt.recorder.latest(arn) or {}
            cluster_arn = page_cluster or (stored.get("posture") or {}).get("cluster_arn")
            if not cluster_arn:
                failures[arn] = "DescribeTasks: the task's cluster is unknown"
                continue
        else:
            cluster_arn = _cluster_arn(arn, cluster)
        by_cluster.setdefault(cluster_arn, []).append(arn)
    found, failed = collect.describe_tasks(clients, region, by_cluster, account)
    return found, failures | failed


def _not_read_here(rt: Runtime, place: tuple[str, str]) -> str | None:
    """For a dependent task of another account or region than its event's (a resource of
    a shared VPC is a dependency of the tasks of every account using it): None when the
    stack reads that account and region (organization scale: an audited account, through
    its role, in an audited region), else the error naming it."""
    audited = allowed_accounts(rt) if rt.audited is not None else frozenset()
    if place[0] in audited and place[1] in allowed_regions(rt):
        return None
    return f"DescribeTasks: task of account {place[0]} in {place[1]}, not read by this stack"


def _audit_described(
    rt: Runtime,
    batch: _Batch,
    account: str,
    region: str,
    task_arns: list[str],
    cause_of,
    refresh_vpcs: bool,
    refreshed_since: float | None = None,
    page_cluster: str | None = None,
) -> dict:
    """Describe tasks the recorder holds as running (in ``account`` / ``region``); re-audit
    those still RUNNING, retire those that ended or vanished. Returns {"errors": [...],
    "api_calls": {...}}. ``page_cluster``: the cluster a sweep page's tasks were listed
    from (a short task ARN names none).

    A task of another account or region (a resource of a shared VPC is a dependency of
    the tasks of every account using it; the index does not name the account) is described
    in its own account and region, through that account's role, when the stack audits it;
    else it is an error, never described with these clients (an answer about a cluster
    they do not own must not retire it)."""
    elsewhere: dict[tuple[str, str], list[str]] = {}
    for arn in task_arns:
        place = (collect.account_of(arn) or account, collect.region_of(arn) or region)
        if place != (account, region):
            elsewhere.setdefault(place, []).append(arn)
    if elsewhere:
        errors: list[dict] = []
        calls: Counter = Counter()
        for (other, other_region), arns in sorted(elsewhere.items()):
            not_read = _not_read_here(rt, (other, other_region))
            if not_read is None:
                try:
                    outcome = _audit_described(
                        rt, batch, other, other_region, arns, cause_of, refresh_vpcs, refreshed_since
                    )
                except UnreachableScope as exc:
                    errors += [{"task_arn": arn, "message": str(exc)} for arn in arns]
                    continue
                errors += outcome["errors"]
                calls.update(outcome["api_calls"])
            else:
                errors += [{"task_arn": arn, "message": not_read} for arn in arns]
        moved = {arn for arns in elsewhere.values() for arn in arns}
        own = [arn for arn in task_arns if arn not in moved]
        if own:
            outcome = _audit_described(
                rt, batch, account, region, own, cause_of, refresh_vpcs, refreshed_since, page_cluster
            )
            errors = [*outcome["errors"], *errors]
            calls.update(outcome["api_calls"])
        return {"errors": errors, "api_calls": dict(calls)}
    clients = scope_clients(rt, account, region)
    before = clients.counter.snapshot()
    described, failures = _describe_tasks(rt, clients, region, task_arns, account, page_cluster)
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
            clients,
            region,
            cluster_arn or None,
            tasks,
            cache=rt.cache_for(account),
            refresh_vpcs=refresh_vpcs,
            refreshed_since=refreshed_since,
        )
        batch.record_audits(collected.raw_tasks, cause_of)
    calls = clients.counter.since(before)  # the fact reads, not the table's requests
    return {"errors": errors, "api_calls": {k: v for k, v in calls.items() if k.startswith(FACT_SERVICES)}}


def handle_config_event(event: Any, rt: Runtime, now: datetime) -> dict:
    """A network resource changed: re-audit the running tasks recorded as depending on it
    (fresh VPC facts: the cache is bypassed and refilled), retire those no longer running,
    publish every workload touched."""
    parsed = events.parse_config_event(event)
    check_origin(
        rt,
        events.CONFIG_EVENT,
        (parsed["account"], parsed["event_region"]),
        (parsed["account_id"], parsed["region"]),
    )
    try:  # the role first: nothing written else
        scope_clients(rt, parsed["account_id"], parsed["region"])
    except UnreachableScope as exc:
        if transient_failure(str(exc)):  # throttled: Config sends no second event; Lambda retries
            raise RetryLater(f"config event {parsed['event_id']}: {exc}; retried") from exc
        raise
    # a task whose first RUNNING event comes after this one, in a container that cached the
    # facts before the change, reads them again (Config is minutes late, ECS events unordered)
    rt.recorder.mark_facts_changed(parsed["region"], now)
    outcome = _config_event(parsed, rt, now)
    outcome["flushed"] = flush_outbox(rt, now)
    transient = [e for e in outcome.get("errors") or () if transient_failure(e["message"])]
    if transient:
        # a dependent task not described for now (DescribeTasks or its account's role
        # throttled past the SDK's retries, a 5xx) keeps its old verdicts, and Config sends
        # no second event: Lambda retries this one (the audits done are kept), then its
        # OnFailure queue holds it
        raise RetryLater(
            f"config event {parsed['event_id']}: {len(transient)} reads of its {outcome['tasks']} "
            f"dependent tasks failed for now ({transient[0]['message']}); retried"
        )
    return outcome


# An oversized notification carries no configuration: what it would have named is read
# from the service instead (notes/event-shapes.md: re-describing is the robust way). The
# subnets a route table or NACL is associated with (tasks that did not depend on it before,
# when a subnet moved to it); a new VPC endpoint's VPC, route tables and subnets; a flow
# log's VPC, subnet or ENI; a new listener's load balancer and target groups.
_ASSOCIATED_SUBNETS = {
    "AWS::EC2::RouteTable": ("describe_route_tables", "RouteTableIds", "RouteTables"),
    "AWS::EC2::NetworkAcl": ("describe_network_acls", "NetworkAclIds", "NetworkAcls"),
}
_DESCRIBED_CONFIGURATION = {  # resource type: (service, call, id parameter, result key)
    "AWS::EC2::VPCEndpoint": ("ec2", "describe_vpc_endpoints", "VpcEndpointIds", "VpcEndpoints"),
    "AWS::EC2::FlowLog": ("ec2", "describe_flow_logs", "FlowLogIds", "FlowLogs"),
    "AWS::ElasticLoadBalancingV2::Listener": ("elbv2", "describe_listeners", "ListenerArns", "Listeners"),
}


def _oversized_related(rt: Runtime, parsed: dict) -> tuple[list[str], str | None]:
    """What an oversized notification's configuration would have named, read through the
    account's clients (one describe); none when the resource is gone or cannot be read
    (its own id still finds the tasks that depended on it). And the describe's failure when
    a later try may not meet it (throttled, a 5xx): the event is then retried, once the
    tasks its own id finds are audited."""
    resource_type, resource_id = parsed["resource_type"], parsed["resource_id"]
    call = "describe"
    try:
        clients = scope_clients(rt, parsed["account_id"], parsed["region"])
        if resource_type in _ASSOCIATED_SUBNETS:
            call, key, listed = _ASSOCIATED_SUBNETS[resource_type]
            found = getattr(clients.ec2(parsed["region"]), call)(**{key: [resource_id]}).get(listed) or []
            return [
                a["SubnetId"] for item in found for a in item.get("Associations") or [] if a.get("SubnetId")
            ], None
        service, call, key, listed = _DESCRIBED_CONFIGURATION[resource_type]
        name = parsed.get("arn") or resource_id if service == "elbv2" else resource_id
        aws_client = clients.get(service, parsed["region"])
        found = getattr(aws_client, call)(**{key: [name]}).get(listed) or []
    except AWS_ERRORS as exc:
        # named by its API call (describe_vpc_endpoints: DescribeVpcEndpoints); gone, or not
        # readable: the resource's own id still finds its dependents
        api = "".join(word.title() for word in call.split("_"))
        return [], describe_error(exc, api) if is_transient(exc) else None
    return [
        i
        for item in found
        for i in events.related_ids({"resourceType": resource_type, "configuration": item})
    ], None


# More dependent tasks than this (a security group or VPC endpoint shared by a whole
# VPC) are not audited by the config event's own invocation, which has one minute: they
# are queued to the sweep workers in pages of one DescribeTasks call each.
CONFIG_INLINE_TASKS = events.SWEEP_PAGE_TASKS


def _fan_out_config_event(rt: Runtime, parsed: dict, task_arns: list[str]) -> dict:
    """The dependent tasks queued to the sweep queue, one message per page of at most
    ``events.SWEEP_PAGE_TASKS`` tasks of a cluster, each naming this event as the audit's
    cause; a worker describes, audits (VPC facts refreshed) and publishes them as it does a
    planner's page. A task of an account or region this stack does not read is an error,
    as inline; one in a short-format ARN (no cluster in it) is audited by a worker of its
    recorded cluster. RetryLater when a message could not be queued (the event is retried;
    a page audited twice records nothing new)."""
    account, region = parsed["account_id"], parsed["region"]
    pages: dict[str, list[str]] = {}
    errors: list[dict] = []
    for arn in task_arns:
        place = (collect.account_of(arn) or account, collect.region_of(arn) or region)
        not_read = _not_read_here(rt, place) if place != (account, region) else None
        if not_read is not None:
            errors.append({"task_arn": arn, "message": not_read})
            continue
        cluster = _cluster_of_task(arn)
        if cluster is not None:
            cluster_arn = _cluster_arn(arn, cluster)
        else:  # short ARN format: the cluster is in the recorded posture
            cluster_arn = ((rt.recorder.latest(arn) or {}).get("posture") or {}).get("cluster_arn")
        if not cluster_arn:
            errors.append({"task_arn": arn, "message": "DescribeTasks: the task's cluster is unknown"})
            continue
        pages.setdefault(cluster_arn, []).append(arn)
    cause = {"type": "config-event", "id": parsed["event_id"], "event_time": parsed["event_time"]}
    size = events.SWEEP_PAGE_TASKS
    bodies = [
        events.sweep_message(
            collect.account_of(cluster_arn),
            collect.region_of(cluster_arn),
            cluster_arn,
            arns[i : i + size],
            cause=cause,
        )
        for cluster_arn, arns in sorted(pages.items())
        for i in range(0, len(arns), size)
    ]
    try:
        sent, refused = queue.send_batches(rt.clients, rt.region, rt.sweep_queue_url, bodies)
    except AWS_ERRORS as exc:
        raise RetryLater(
            f"config event {parsed['event_id']}: {failure_message(exc, 'SendMessageBatch')}"
        ) from exc
    if refused:
        raise RetryLater(
            f"config event {parsed['event_id']}: {len(refused)} of {len(bodies)} sweep messages not queued"
        )
    return {"status": QUEUED, "tasks": len(task_arns), "messages": sent, "errors": errors}


def _config_event(parsed: dict, rt: Runtime, now: datetime) -> dict:
    base = {
        "event_id": parsed["event_id"],
        "resource_type": parsed["resource_type"],
        "resource_id": parsed["resource_id"],
        "oversized": parsed["oversized"],
    }
    # a resource is indexed by the id the posture names: for a load balancer or listener its
    # ARN, which Config gives as ARN (and as resourceId); for EC2 resources the resourceId
    related = list(parsed.get("related_ids", ()))
    unread: list[dict] = []  # a transient failure of an oversized notification's describe
    described = (*_ASSOCIATED_SUBNETS, *_DESCRIBED_CONFIGURATION)
    if parsed["oversized"] and not related and parsed["resource_type"] in described:
        related, failure = _oversized_related(rt, parsed)
        unread = [{"resource_id": parsed["resource_id"], "message": failure}] if failure else []
    ids = dict.fromkeys(i for i in (parsed["resource_id"], parsed.get("arn"), *related) if i)
    task_arns = sorted({arn for i in ids for arn in rt.recorder.tasks_for_resource(i)})
    if not task_arns:
        ignored = {"status": IGNORED, "reason": "no running task depends on it", "tasks": 0}
        return base | ignored | ({"errors": unread} if unread else {})
    if len(task_arns) > CONFIG_INLINE_TASKS and rt.sweep_queue_url:
        fanned = _fan_out_config_event(rt, parsed, task_arns)
        return base | fanned | {"errors": [*fanned["errors"], *unread]}
    batch = _Batch(rt, now)

    def cause_of(raw: dict) -> dict:
        return _cause("config-event", parsed["event_id"], raw["task"].get("version"), parsed["event_time"])

    outcome = _audit_described(
        rt, batch, parsed["account_id"], parsed["region"], task_arns, cause_of, refresh_vpcs=True
    )
    return base | {
        "status": AUDITED,
        "tasks": len(task_arns),
        **batch.counts,
        "task_results": batch.tasks,
        "errors": [*outcome["errors"], *batch.unrecorded, *unread],
        "api_calls": outcome["api_calls"],
        "findings": batch.publish(),
    }


# --------------------------------------------------------------------------- sweep


def accept_scheduled_event(event: Any, rt: Runtime, now: datetime) -> dict:
    """The planner's schedule event, parsed and its origin checked (``now`` unused: the
    handler envelope's signature)."""
    parsed = events.parse_scheduled_event(event)
    if rt.own_account:
        # the schedule is the stack's own rule, whatever the stack audits: its own account
        # or not (AUDIT_ROLE_ARN, an organization), its own region or others (ALLOWED_REGIONS)
        if parsed["account"] != rt.own_account or parsed["region"] != rt.region:
            raise ForeignEventError(
                f"{events.SCHEDULED_EVENT}: not the stack's own schedule ({rt.own_account} {rt.region})",
                account=parsed["account"],
                region=parsed["region"],
            )
        return parsed
    check_origin(rt, events.SCHEDULED_EVENT, (parsed["account"], parsed["region"]))
    return parsed


def plan_sweep(rt: Runtime, queue_url: str, now: datetime, region: str | None = None) -> dict:
    """List every cluster of the region, list each cluster's running tasks (ListTasks, pages
    of 100, as a scan lists them) and queue one sweep message per page of at most
    ``events.SWEEP_PAGE_TASKS`` task ARNs (SendMessageBatch, 10 a call): a cluster of 5,000
    tasks is 50 messages that workers audit in parallel, one DescribeTasks each. SweepError
    when the clusters cannot be listed or messages could not be queued (after one retry of
    the failed entries): the invocation is retried.

    Retiring the tasks that no longer run is decided here, once per cluster and sweep,
    because the planner is the one holding the cluster's complete listing: a page's worker
    sees its page only, and a per-cluster message would list the cluster a second time.
    The tasks the recorder holds as RUNNING in the cluster (:func:`_recorded_running_by_workload`) that
    the listing lacks are queued in the cluster's pages after its listed tasks (an empty
    cluster gets pages of those alone). The worker describes them like every task of a page
    (``sweep_cluster``): those DescribeTasks reports ended or no longer knows (``MISSING``)
    are retired, one still running is audited; so a task started and recorded after the
    listing is never retired by mistake (STOPPED is terminal). Cost, counted in
    ``api_calls``: one DynamoDB Query per account and region for the workloads with ACTIVE
    findings (publishing off: one BatchGetItem per page, the workloads recorded for the
    listed tasks) and one per workload for its running task ARNs (projected: no posture is
    read), and no message of its own unless the listed tasks fill their last page. A
    cluster whose listing failed on any page queues nothing: a partial listing proves
    nothing about the tasks it missed.

    A cluster whose ListTasks is refused is reported in ``unreachable`` (``{"account_id",
    "region", "cluster_arn", "error"}``, the error naming the refused call) and queued as a
    whole-cluster message: a worker lists it, and SQS redelivers the message while that
    listing fails (a throttled ListTasks is retried, not skipped until the next schedule);
    the other clusters go on. Organization scale (``rt.audited``): every audited account x region
    (AUDITED_REGIONS, else ``region``) is listed through the account's member role and each
    page names its account and region; a scope that cannot be listed (role refused, region
    not enabled, ListClusters denied) is reported in ``unreachable`` (``{"account_id",
    "region", "error"}``) and the others go on; SweepError only when no scope could be
    listed at all."""
    region = region or rt.region
    before = rt.clients.counter.snapshot()
    plan = _SweepPlan()
    if rt.audited is None:
        # one account (the function's own, or AUDIT_ROLE_ARN's): its region, or every region
        # whose events it audits (ALLOWED_REGIONS); one that cannot be listed is reported
        # and the others go on, unless it is the only one
        regions = sorted(rt.allowed_regions or {region})
        for scope_region in regions:
            try:
                clusters = collect.list_clusters(rt.clients, scope_region)
            except AWS_ERRORS as exc:
                if len(regions) == 1:
                    raise SweepError(failure_message(exc, "ListClusters")) from exc
                error = f"ecs:{describe_error(exc, 'ListClusters')}"
                account = rt.audit_role_account or rt.own_account or ""
                plan.unreachable.append({"account_id": account, "region": scope_region, "error": error})
                continue
            account = (collect.account_of(clusters[0]) if clusters else None) or rt.audit_role_account
            plan.scope(rt, rt.clients, account or rt.own_account, scope_region, clusters)
        # the accounts whose events it audits (ALLOWED_ACCOUNTS, else its own or the role's)
        plan.no_longer_audited(rt, {(acct, r) for acct in allowed_accounts(rt) for r in regions})
        if len(plan.unreachable) == len(regions) > 1:
            first = plan.unreachable[0]
            raise SweepError(
                f"no region could be listed ({len(regions)} tried); {first['region']}: {first['error']}",
                {"clusters": 0, "messages": 0, "unreachable": plan.unreachable},
            )
        sent = _queue_sweep(rt, rt.region, queue_url, plan)
        return {"status": "planned", "region": region, **plan.summary(sent), "api_calls": _calls(rt, before)}

    scopes = sweep_scopes(rt, region)
    unreachable_scopes = 0
    for account, scope_region in scopes:
        try:
            clients = scope_clients(rt, account, scope_region)
            listed = collect.list_clusters(clients, scope_region)
        except UnreachableScope as exc:
            plan.unreachable.append({"account_id": account, "region": scope_region, "error": str(exc)})
            unreachable_scopes += 1
            continue
        except AWS_ERRORS as exc:
            error = f"ecs:{describe_error(exc, 'ListClusters')}"
            plan.unreachable.append({"account_id": account, "region": scope_region, "error": error})
            unreachable_scopes += 1
            continue
        plan.scope(rt, clients, account, scope_region, listed)
    plan.no_longer_audited(rt, set(scopes))
    if scopes and unreachable_scopes == len(scopes):
        first = plan.unreachable[0]
        raise SweepError(
            f"no audited account and region could be listed ({len(scopes)} tried); "
            f"{first['account_id']} {first['region']}: {first['error']}",
            {"scopes": len(scopes), "clusters": 0, "messages": 0, "unreachable": plan.unreachable},
        )
    sent = _queue_sweep(rt, rt.region, queue_url, plan)
    return {
        "status": "planned",
        "region": region,
        "scopes": len(scopes),
        "accounts": len({account for account, _ in scopes}),
        **plan.summary(sent),
        "api_calls": _calls(rt, before),
    }


class _SweepPlan:
    """The messages of one sweep, cluster by cluster: the bodies, the cluster of each (to
    name a message SQS refused), and what could not be listed."""

    def __init__(self) -> None:
        self.bodies: list[str] = []
        self.labels: list[str] = []  # the cluster ARN of each body
        self.clusters = 0
        self.tasks = 0  # listed
        self.retiring = 0  # held as RUNNING by the recorder, not listed: described, then retired
        self.orphans = 0  # workloads with ACTIVE findings and no task recorded running: archived
        self.dropped = 0  # workloads with ACTIVE findings in a scope no longer audited: retired
        self.unreachable: list[dict] = []
        self._active: list[str] | None = None  # every ACTIVE finding's workload key (one Query)

    def active_keys(self, rt: Runtime) -> list[str]:
        """The workload keys of every ACTIVE finding of the table: one Query per sweep
        (projected to the key), which each scope then filters."""
        if self._active is None:
            self._active = rt.findings.active_workload_keys("fargate-audit/")
        return self._active

    def scope(
        self, rt: Runtime, clients: Clients, account: str | None, region: str, clusters: list[str]
    ) -> None:
        """The pages of one account and region: each listed cluster's, then those of the
        clusters ListClusters no longer lists (deleted) where findings are still ACTIVE:
        their recorded running tasks, to be described and retired (one DynamoDB Query for
        the scope's active workloads, when findings are published)."""
        active = _active_workloads(rt, account, region, self.active_keys(rt) if rt.publisher else [])
        for arn in clusters:
            self.cluster(rt, clients, account or "", region, arn, active)
        listed_names = {arn.split("/", 1)[-1] for arn in clusters}
        for name in sorted(set(active or ()) - listed_names):
            arn = f"arn:{partition_of(region)}:ecs:{region}:{account}:cluster/{name}"
            self.cluster(rt, clients, account or "", region, arn, active, deleted=True)

    def cluster(
        self,
        rt: Runtime,
        clients: Clients,
        account: str,
        region: str,
        cluster_arn: str,
        active: dict[str, list[str]] | None = None,
        deleted: bool = False,
    ) -> None:
        """List one cluster and add its pages; a refused ListTasks is an unreachable cluster.
        A cluster ECS no longer has (``deleted``: not listed; or ListTasks answers
        ``ClusterNotFoundException``) runs no task: the recorder's running tasks there are
        all queued for retirement."""
        self.clusters += 1
        listed: list[str] = []
        if not deleted:
            try:
                listed = collect.list_tasks(clients, region, cluster_arn)
            except AWS_ERRORS as exc:
                if error_code(exc) != "ClusterNotFoundException":
                    error = f"ecs:{describe_error(exc, 'ListTasks')}"
                    self.unreachable.append(
                        {"account_id": account, "region": region, "cluster_arn": cluster_arn, "error": error}
                    )
                    # the cluster is left to a worker: a whole-cluster message lists it there,
                    # and SQS redelivers it while the listing fails (a throttled or briefly
                    # refused ListTasks is retried, not skipped until the next schedule)
                    self.bodies.append(events.sweep_message(account, region, cluster_arn))
                    self.labels.append(cluster_arn)
                    return
        known = set(listed)
        running = _recorded_running_by_workload(rt, cluster_arn, listed, active)
        recorded = dict.fromkeys(arn for arns in running.values() for arn in arns)
        gone = [arn for arn in recorded if arn not in known]
        arns = listed + gone
        for start in range(0, len(arns), events.SWEEP_PAGE_TASKS):
            page = arns[start : start + events.SWEEP_PAGE_TASKS]
            self.bodies.append(events.sweep_message(account, region, cluster_arn, page))
            self.labels.append(cluster_arn)
        # workloads whose findings are ACTIVE though no task of theirs is recorded running
        # (their last STOPPED was recorded but its publishing failed every retry, or raced
        # another's): published by a worker, which archives them; nothing else would
        orphans = [
            key for key in (active or {}).get(cluster_arn.split("/", 1)[-1], ()) if not running.get(key)
        ]
        if rt.publisher is not None:
            for start in range(0, len(orphans), events.SWEEP_PAGE_TASKS):
                chunk = orphans[start : start + events.SWEEP_PAGE_TASKS]
                self.bodies.append(events.sweep_message(account, region, cluster_arn, workloads=chunk))
                self.labels.append(cluster_arn)
            self.orphans += len(orphans)
        self.tasks += len(listed)
        self.retiring += len(gone)

    def no_longer_audited(self, rt: Runtime, audited: set[tuple[str, str]]) -> None:
        """The workloads with ACTIVE findings in an account and region the stack no longer
        audits (removed from AuditedAccounts or AuditedRegions, suspended, out of the
        allowlists): queued to a worker that retires their recorded running tasks and
        archives their findings; nothing else would, as their events are refused now (one
        Query over every ACTIVE finding, when findings are published)."""
        if rt.publisher is None:
            return
        by_cluster: dict[tuple[str, str, str], list[str]] = {}
        for key in self.active_keys(rt):
            parts = key.split("#", 4)
            if len(parts) == 5 and (parts[1], parts[2]) not in audited:
                by_cluster.setdefault((parts[1], parts[2], parts[3]), []).append(key)
        for (account, region, cluster), workload_keys in sorted(by_cluster.items()):
            cluster_arn = f"arn:{partition_of(region)}:ecs:{region}:{account}:cluster/{cluster}"
            for start in range(0, len(workload_keys), events.SWEEP_PAGE_TASKS):
                chunk = workload_keys[start : start + events.SWEEP_PAGE_TASKS]
                body = events.sweep_message(
                    account, region, cluster_arn, workloads=chunk, no_longer_audited=True
                )
                self.bodies.append(body)
                self.labels.append(cluster_arn)
            self.dropped += len(workload_keys)

    def summary(self, sent: int) -> dict:
        return {
            "clusters": self.clusters,
            "tasks": self.tasks,
            "retiring": self.retiring,
            "orphaned_workloads": self.orphans,
            "no_longer_audited_workloads": self.dropped,
            "messages": sent,
            "unreachable": self.unreachable,
        }


def _active_workloads(
    rt: Runtime, account: str | None, region: str, active_keys: list[str]
) -> dict[str, list[str]] | None:
    """{cluster name: workload keys} of the ACTIVE findings of one account and region, of
    ``active_keys`` (every ACTIVE finding's workload key, read once per sweep:
    ``_SweepPlan.active_keys``); findings not published, the workloads the recorder
    registered there (one Query: ``Recorder.register_workload``); None when the account is
    unknown."""
    if not account:
        return None
    if rt.publisher is None:
        return rt.recorder.registered_workloads(account, region)
    by_cluster: dict[str, list[str]] = {}
    for key in active_keys:
        parts = key.split("#", 4)
        if len(parts) == 5 and parts[1:3] == [account, region]:
            by_cluster.setdefault(parts[3], []).append(key)
    return by_cluster


def _recorded_running_by_workload(
    rt: Runtime, cluster_arn: str, listed: list[str], active: dict[str, list[str]] | None = None
) -> dict[str, list[str]]:
    """The ARNs of the tasks the recorder holds as RUNNING in the cluster, per workload key
    (an empty list: none recorded running): the running sets
    of the workloads :func:`_known_workloads` finds there (one Query each, ARNs only). With
    publishing off there are no finding states: the workloads are those recorded for the
    ``listed`` tasks (one BatchGetItem per 100) and those of the recorder's registry
    (``active``, :func:`_active_workloads`), so a workload none of whose tasks is listed
    any more is still found."""
    seen = rt.recorder.workloads_of(listed) if rt.publisher is None and listed else ()
    return {
        key: list(rt.recorder.running_task_arns(key))
        for key in _known_workloads(rt, cluster_arn, seen, active)
    }


def _calls(rt: Runtime, before: dict[str, int]) -> dict[str, int]:
    """Requests made through the runtime's clients since ``before`` (every service: the
    member accounts' clients share the counter)."""
    return rt.clients.counter.since(before)


def sweep_scopes(rt: Runtime, region: str | None = None) -> list[tuple[str, str]]:
    """(account, region) pairs a sweep covers: the audited accounts (each once, within the
    allowlist) x the regions whose events are audited (:func:`allowed_regions`: the same
    set), else ``region``, else the function's."""
    accounts = sorted(allowed_accounts(rt))
    explicit = rt.audited_regions or rt.allowed_regions
    regions = sorted(allowed_regions(rt) if explicit else {region or rt.region})
    return [(account, scope_region) for account in accounts for scope_region in regions]


def _queue_sweep(rt: Runtime, region: str, queue_url: str, plan: _SweepPlan) -> int:
    try:
        sent, refused = queue.send_batches(rt.clients, region, queue_url, plan.bodies)
    except AWS_ERRORS as exc:
        raise SweepError(failure_message(exc, "SendMessageBatch")) from exc
    failed = [f"{plan.labels[index]}: {why}" for index, why in refused]
    if failed:
        raise SweepError(
            f"SendMessageBatch: {len(failed)} of {len(plan.bodies)} sweep messages not queued: {failed[0]}",
            {"clusters": plan.clusters, "messages": sent, "unreachable": plan.unreachable},
        )
    return sent


def _known_workloads(
    rt: Runtime, cluster_arn: str, seen: Iterable[str], active: dict[str, list[str]] | None = None
) -> list[str]:
    """Workload keys of the cluster the recorder may hold running tasks for: those seen now,
    plus those with an ACTIVE finding (every workload with a running task has some while
    findings are published; the table has no index of running tasks by cluster).
    ``active``: the scope's, already read (:func:`_active_workloads`)."""
    parts = cluster_arn.split(":", 5)
    cluster = [parts[4], parts[3], parts[5].split("/", 1)[1]]  # account, region, cluster name
    keys = dict.fromkeys(seen)
    if active is not None:
        keys.update(dict.fromkeys(active.get(cluster[2], ())))
    elif rt.publisher is not None:
        # the cluster's own findings only (their Ids begin with its account, region and
        # name): a sweep reads its cluster's, not the whole organization's
        prefix = f"fargate-audit/{cluster[0]}/{cluster[1]}/{cluster[2]}/"
        for key in rt.findings.active_workload_keys(prefix):
            if key.split("#", 4)[1:4] == cluster:
                keys[key] = None
    return list(keys)


def _retire_no_longer_audited(
    rt: Runtime,
    message_id: str,
    account: str,
    region: str,
    cluster_arn: str,
    workloads: list[str],
    now: datetime,
) -> dict:
    """A planner's message for workloads of an account and region the stack no longer
    audits: their recorded running tasks retired (stopped now, as far as the auditor is
    concerned) and their findings archived, in the account's Security Hub through its
    role while that can still be assumed (else they wait in the outbox, and the next sweep
    queues them again). Nothing is read from the account. One whose scope is audited
    (again, since it was queued) is ignored."""
    batch = _Batch(rt, now)
    audited = origin_error(rt, account, region) is None
    if not audited:
        stopped_at = now.strftime("%Y-%m-%dT%H:%M:%SZ")
        cause = _cause("sweep", message_id, None, None)
        for key in workloads:
            batch._touch(key)
            for task in rt.recorder.running_tasks(key):
                batch.stopped(task["task_arn"], None, stopped_at, cause, key)
    return {
        "status": IGNORED if audited else "retired",
        "reason": "scope audited" if audited else "no longer audited",
        "account_id": account,
        "region": region,
        "cluster_arn": cluster_arn,
        "tasks": 0,
        **batch.counts,
        "api_calls": {},
        "findings": None if audited else batch.publish(),
        "flushed": None,
        "errors": [],
    }


def sweep_cluster(
    message: Any,
    rt: Runtime,
    now: datetime,
    message_id: str | None = None,
    refreshed_since: float | None = None,
) -> dict:
    """Sweep one SweepQueue message; every workload touched is published, then undelivered
    findings left in the outbox are flushed.

    A page (``task_arns``, what ``plan_sweep`` sends): those tasks are described
    (DescribeTasks, one call), those still RUNNING collected afresh (VPC facts refreshed),
    evaluated and recorded, those that ended or that ECS no longer knows retired (the
    planner put there the tasks the recorder holds as running that its listing lacked).
    A whole cluster (no ``task_arns``: the messages of planners before pages, still
    valid): every running Fargate task is listed and audited as above, and the tasks the
    recorder holds as running there that the listing lacks are retired, only when the
    listing is complete. ``refreshed_since``: a ``rt.cache.now()`` reading from the start
    of the worker's invocation: VPC facts fetched since are fresh already (the pages of one
    cluster in one SQS batch refresh a VPC once, not once a page). SweepError when the
    cluster could not be fully listed or the tasks described (the message is retried)."""
    parsed = events.parse_sweep_message(message)
    account, region, cluster_arn = parsed["account_id"], parsed["region"], parsed["cluster_arn"]
    if parsed["no_longer_audited"]:  # the planner's, for a scope it no longer audits
        return _retire_no_longer_audited(
            rt, message_id, account, region, cluster_arn, parsed["workloads"], now
        )
    check_origin(rt, events.SWEEP_MESSAGE, (parsed["account_id"], parsed["region"]))
    clients = scope_clients(rt, account, region)
    batch = _Batch(rt, now)

    def cause_of(raw: dict) -> dict:
        if parsed["cause"]:  # a config event's page: that change is why the task is audited
            given = parsed["cause"]
            return _cause(given["type"], given["id"], raw["task"].get("version"), given.get("event_time"))
        return _cause("sweep", message_id, raw["task"].get("version"), None)

    if parsed["workloads"]:
        # the planner's: ACTIVE findings, no task recorded running; publishing archives
        # them (or, should a task have been recorded since, publishes what runs)
        for key in parsed["workloads"]:
            batch._touch(key)
        errors, api_calls, listed = [], {}, set()
    elif parsed["task_arns"]:
        outcome = _audit_described(
            rt,
            batch,
            account,
            region,
            parsed["task_arns"],
            cause_of,
            refresh_vpcs=True,
            refreshed_since=refreshed_since,
            page_cluster=cluster_arn,
        )
        errors, api_calls = outcome["errors"], outcome["api_calls"]
        listed = None
    else:
        try:
            collected = collect.collect(
                None,
                regions=[region],
                clusters=[cluster_arn],
                clients=clients,
                cache=rt.cache_for(account),
                refresh_vpcs=True,
                refreshed_since=refreshed_since,
            )
        except ScanError as exc:  # the cluster could not be listed at all: retry the message
            if not collect.cluster_deleted(clients, region, cluster_arn):
                raise SweepError(
                    f"sweep of {cluster_arn} failed: {exc}", {"cluster_arn": cluster_arn}
                ) from exc
            # deleted since the message was queued: nothing runs there; the tasks recorded
            # running in it are described (MISSING) and retired below, as a page's are
            collected = None
        if collected is None:
            errors, api_calls, listed = [], {}, set()
        else:
            errors, api_calls = collected.errors, collected.api_calls
            batch.record_audits(collected.raw_tasks, cause_of)
            listed = {raw["task"].get("taskArn") for raw in collected.raw_tasks}
        if not errors:  # a partial listing proves nothing about the tasks it missed
            # the recorder's running tasks the listing lacks are described first, as a page's
            # are: one started (and recorded) after the listing is audited, never retired
            missing = [
                task["task_arn"]
                for key in _known_workloads(rt, cluster_arn, list(batch.fresh))
                for task in rt.recorder.running_tasks(key)
                if task["task_arn"] not in listed
            ]
            if missing:
                described = _audit_described(
                    rt, batch, account, region, missing, cause_of, True, refreshed_since
                )
                errors = [*errors, *described["errors"]]
                api_calls = dict(Counter(api_calls) + Counter(described["api_calls"]))
    findings = batch.publish()
    flushed = flush_outbox(rt, now, limit=SWEEP_FLUSH_LIMIT)
    errors = [*errors, *batch.unrecorded]  # too large to record: the page is retried, then dead-lettered
    result = {
        "status": "swept",
        "account_id": account,
        "region": region,
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


# --------------------------------------------------------------------------- DNS query logs


def _read_ranges(rt: Runtime, records: list) -> dict:
    """The IP index ranges of every source address of a batch that may hold its queries
    (one Query per distinct address)."""
    return {
        (vpc, ip): rt.recorder.ip_ranges(vpc, ip, until=high, since=low)
        for (vpc, ip), (low, high) in sorted(dnslogs.source_windows(records).items())
    }


def discovery_answers(rt: Runtime, store: DiscoveryStore, now: datetime | None = None):
    """``answers(flow)`` for the flow rows of one batch's workloads (``dnslogs.
    flow_answers`` with the params' ``dns_answer_lookback``): one reader per batch, so
    workloads sending to the same address in the same hours share its Query; rows that
    started before the answers' retention (``now``) are not read."""
    lookback = duration_seconds(effective_params(rt.catalog, rt.params)["dns_answer_lookback"])
    return dnslogs.flow_answers(store.answers, lookback, now)


def evaluate_workload_discovery(
    rt: Runtime, store: DiscoveryStore, workload_key: str, now: datetime, answers=None
) -> tuple[list[dict], Any]:
    """The workload-discovery rules (EGR-01, EGR-03) on everything recorded for one
    workload (its DNS destinations; its flow rows, each with the DNS answers of its
    address in the lookback window before it started; its flow record count), and their
    findings synchronised with Security Hub. Nothing is published for a workload with no
    running task (its findings were archived when the last one stopped) or when
    publishing is off. ``answers``: the batch's reader (:func:`discovery_answers`), else
    one of its own. Returns (results, publish outcome or None)."""
    if answers is None:
        answers = discovery_answers(rt, store, now)
    flows = [
        flow | {"answers": answers(flow) if flow.get("action") == "ACCEPT" else []}
        for flow in store.flows(workload_key)
    ]
    _keep_names(rt, store, workload_key, flows)  # whether or not anything is published
    running = rt.recorder.running_tasks(workload_key)
    if not running or rt.publisher is None:
        return [], None
    postures = [task["posture"] for task in running]
    first = postures[0]
    summary = store.summary(workload_key) or {}
    discovery = {
        "account_id": first["account_id"],
        "region": first["region"],
        "workload": first.get("workload"),
        "workload_key": workload_key,
        "cluster_name": first.get("cluster_name"),
        "group": first.get("group"),
        "destinations": store.destinations(workload_key),
        "flow_records": int(summary.get("flow_records") or 0),
        # EGR-03 names only ACCEPTed rows: a REJECTed one needs no answer read
        "flows": flows,
    }
    evaluation = engine.evaluate_discovery(rt.catalog, discovery, rt.params, today=now.date())
    findings = [asff.build_discovery_finding(r, postures, rt.catalog, now) for r in evaluation.results]
    rules = [rule.id for rule in rt.catalog.discovery_rules]
    return evaluation.results, rt.publisher.sync_workload(workload_key, findings, now, rules=rules)


def _keep_names(rt: Runtime, store: DiscoveryStore, workload_key: str, flows: list[dict]) -> None:
    """Keep on each ACCEPTed flow row the name an answer gave its first flow
    (``DiscoveryStore.keep_name``, once per row and first_seen; again when the workload's
    own answer, delivered later, names it where another's did), so it stays named after
    that answer expires (answers are kept 8 days; a row lives while traffic goes on)."""
    lookback = duration_seconds(effective_params(rt.catalog, rt.params)["dns_answer_lookback"])
    for flow in flows:
        if flow.get("action") != "ACCEPT" or not flow.get("answers") or egress.kept_own(flow):
            continue
        found = egress.name_source(flow["answers"], str(flow.get("first_seen") or ""), workload_key, lookback)
        if found is None or (egress.kept_name(flow) and not found[1]):
            continue  # nothing names it, or another's answer names it and one is kept already
        store.keep_name(workload_key, flow, found[0], own=found[1])


def handle_dns_logs(event: Any, rt: Runtime, now: datetime) -> dict:
    """One CloudWatch Logs subscription batch of Resolver query logs: parse (malformed
    records counted and skipped), attribute each query to the task holding its source
    address then (the IP index; unknown sources go to ``unattributed``), aggregate per
    (workload, name, query type), write once per batch however often it is delivered,
    keep the addresses the answers name (per VPC, address, hour, name and source), then
    evaluate EGR-01 and EGR-03 for every attributed workload it touched and publish."""
    payload = dnslogs.decode_subscription(event)
    base = {"log_group": payload.get("logGroup"), "log_stream": payload.get("logStream")}
    if payload["messageType"] == dnslogs.CONTROL_MESSAGE:
        return base | {"status": IGNORED, "reason": "CONTROL_MESSAGE"}
    records, malformed = dnslogs.parse_records(payload)
    batch = dnslogs.batch_id(payload)
    store = DiscoveryStore(rt.recorder.table)
    base |= {"batch_id": batch, "records": len(records), "malformed": malformed}
    if not records:
        return base | {"status": IGNORED, "reason": "no query-log record in the batch"}

    def stored_attribution(markers: dict) -> dict | None:
        first = markers.get(0)
        return dnslogs.decode_snapshot(first["attribution"]) if first and first.get("attribution") else None

    applied = store.markers(batch)  # the chunks an earlier delivery applied
    ranges = stored_attribution(applied)  # a redelivery re-uses the first delivery's attribution
    redelivered = ranges is not None
    if ranges is None:
        ranges = _read_ranges(rt, records)
    aggregation = dnslogs.aggregate(records, ranges)

    def replan():
        theirs = stored_attribution(store.markers(batch))
        return dnslogs.aggregate(records, theirs) if theirs is not None else None

    stats, aggregation = dnslogs.write_batch(
        store,
        batch,
        aggregation,
        len(records),
        now,
        None if redelivered else dnslogs.encode_snapshot(ranges),
        replan=None if redelivered else replan,
        applied=applied,
    )
    results, outcomes = {}, []
    answers = discovery_answers(rt, store, now)
    for key in aggregation.workloads(attributed_only=True):
        found, outcome = evaluate_workload_discovery(rt, store, key, now, answers)
        results.update({f"{key}/{r['rule_id']}": r["status"] for r in found})
        outcomes.append(outcome)
    findings = _publish_summary(outcomes)
    findings["workloads"] = sum(1 for outcome in outcomes if outcome is not None)
    return base | {
        "status": "recorded" if stats.written else "duplicate",
        "attributed": aggregation.attributed,
        "unattributed": aggregation.unattributed,
        "destinations": len(aggregation.aggregates),
        "answers": len(aggregation.answers),
        "workloads": aggregation.workloads(),
        "chunks": stats.chunks,
        "chunks_written": stats.written,
        "chunks_skipped": stats.skipped,
        "item_writes": stats.actions,
        "results": results,
        "findings": findings,
    }


# --------------------------------------------------------------------------- VPC flow logs


def flow_log_format(rt: Runtime, group: str) -> flowlogs.FormatChoice:
    """The format of log group ``group``'s records: the LogFormat of the flow logs that
    deliver to it (``ec2:DescribeFlowLogs``, filter ``log-group-name``, through the
    runtime's EC2 client: the function's own, or AUDIT_ROLE_ARN's; kept in
    ``rt.flow_log_cache``), else FLOW_LOG_FORMAT
    (``flowlogs.choose_format``). FlowLogLookupError when DescribeFlowLogs fails;
    FlowFormatError when flow logs of different formats deliver there and FLOW_LOG_FORMAT
    is unset."""
    found = flowlog_lookup.cached_group_flow_logs(
        rt.flow_log_cache, lambda: rt.clients.ec2(rt.region), group, flowlogs.settled
    )
    return flowlogs.choose_format(group, found, rt.flow_log_format)


def handle_flow_logs(event: Any, rt: Runtime, now: datetime) -> dict:
    """One CloudWatch Logs subscription batch of VPC flow-log records: the format first
    (:func:`flow_log_format`: the flow log's own, looked up by the batch's log group; a
    format lacking a needed field, or flow logs of different formats, reject the batch:
    ``FlowFormatError``, nothing recorded; a failed lookup raises), records parsed
    (malformed ones counted and skipped, NODATA/SKIPDATA counted), each attributed by its
    ENI to the task that owned it when the flow started (the ENI index), internet egress
    aggregated per (workload, address, protocol, port, action) and written once per batch
    however often it is delivered. ``format_source`` in the outcome says whose format it was.
    Then the workload-discovery rules (EGR-03 with EGR-01) are evaluated for every
    workload the batch had records of, and published."""
    payload = dnslogs.decode_subscription(event)
    base = {"log_group": payload.get("logGroup"), "log_stream": payload.get("logStream")}
    if payload["messageType"] == dnslogs.CONTROL_MESSAGE:
        return base | {"status": IGNORED, "reason": "CONTROL_MESSAGE"}
    group = payload.get("logGroup")
    if not isinstance(group, str) or not group:
        raise events.EventError("logGroup: missing or not a string")
    choice = flow_log_format(rt, group)
    fields = flowlogs.parse_format(choice.text, choice.what)
    records, skipped, malformed = flowlogs.parse_records(payload, fields)
    if any(flowlogs.FIELD_COUNT_MISMATCH in m["reason"] for m in malformed):
        # records that do not fit the format kept for the group: its flow log may have been
        # deleted and created again in another format since it was read; read it again once
        rt.flow_log_cache.forget(group)
        fresh = flow_log_format(rt, group)
        if fresh.text != choice.text:
            choice = fresh
            fields = flowlogs.parse_format(choice.text, choice.what)
            records, skipped, malformed = flowlogs.parse_records(payload, fields)
    batch = dnslogs.batch_id(payload)
    store = DiscoveryStore(rt.recorder.table)
    prefix = flowlogs.FLOW_BATCH_PREFIX
    base |= {
        "format_source": choice.source,
        "batch_id": batch,
        "records": len(records),
        "no_data": len(skipped),
        "malformed": malformed,
    }
    if not records:
        return base | {"status": IGNORED, "reason": "no flow record in the batch"}

    def stored_attribution(markers: dict) -> dict | None:
        first = markers.get(0)
        return flowlogs.decode_snapshot(first["attribution"]) if first and first.get("attribution") else None

    applied = store.markers(batch, prefix)
    ranges = stored_attribution(applied)  # a redelivery re-uses the first delivery's attribution
    redelivered = ranges is not None
    if ranges is None:
        ranges = {
            eni: rt.recorder.eni_ranges(eni, until=high, since=low)
            for eni, (low, high) in sorted(flowlogs.eni_windows(records).items())
        }
        # the VPCs' own CIDRs are not internet (rules.md EGR-03): ec2:DescribeVpcs, cached
        cidrs = flowlog_lookup.cached_vpc_cidrs(
            rt.flow_log_cache, lambda: rt.clients.ec2(rt.region), flowlogs.range_vpcs(ranges)
        )
        ranges = flowlogs.with_vpc_cidrs(ranges, cidrs)
    aggregation = flowlogs.aggregate(records, ranges, rt.flow_private)

    def replan():
        theirs = stored_attribution(store.markers(batch, prefix))
        return flowlogs.aggregate(records, theirs, rt.flow_private) if theirs is not None else None

    stats, aggregation = flowlogs.write_batch(
        store,
        batch,
        aggregation,
        len(records),
        now,
        None if redelivered else flowlogs.encode_snapshot(ranges),
        replan=None if redelivered else replan,
        applied=applied,
    )
    status = "recorded" if stats.written else ("duplicate" if stats.skipped else IGNORED)
    if not stats.chunks:
        base["reason"] = "no record of a known task's ENI in the batch"
    results, outcomes = {}, []
    answers = discovery_answers(rt, store, now)
    for key in aggregation.workloads():
        found, outcome = evaluate_workload_discovery(rt, store, key, now, answers)
        results.update({f"{key}/{r['rule_id']}": r["status"] for r in found})
        outcomes.append(outcome)
    findings = _publish_summary(outcomes)
    findings["workloads"] = sum(1 for outcome in outcomes if outcome is not None)
    return base | {
        "status": status,
        **aggregation.counts(),
        "destinations": len(aggregation.aggregates),
        "workloads": aggregation.workloads(),
        "chunks": stats.chunks,
        "chunks_written": stats.written,
        "chunks_skipped": stats.skipped,
        "item_writes": stats.actions,
        "results": results,
        "findings": findings,
    }
