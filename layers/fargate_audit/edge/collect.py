"""All AWS reads of a scan: running Fargate tasks and the network facts around them.

Batched and paginated so the request count grows with pages, not tasks (design.md §4):

  per region   ListClusters (pages of 100)  -- skipped when clusters are given
               DescribeClusters  one call per 100 clusters (include SETTINGS), each cluster once
               ListTasks         per cluster, pages of 100 (desiredStatus RUNNING, the default;
                                 `list_tasks` is the same listing for the sweep planner)
               DescribeTasks     per cluster, 100 tasks a call
               DescribeTaskDefinition  once per distinct task definition ARN
               DescribeNetworkInterfaces  `network-interface-id` filter, 200 ids a call; above
                                 1,000 ENIs a `subnet-id` filter (200 subnets a call, pages
                                 of 1,000) keeping the wanted ones
               VPC facts         once for all VPCs of the region (`vpc-id` filter, 200 VPCs a
                                 call, pages of 1,000 / 100 for route tables): security
                                 groups, route tables, NACLs, VPC endpoints, NAT gateways (no
                                 DescribeSubnets: no fact is derived from the subnet list, the
                                 task's subnet id comes from its ENI)
               DescribeFlowLogs  unfiltered, pages of 1,000, assigned to the VPC whose id,
                                 subnet or task ENI each flow log names
               ListResolverQueryLogConfigAssociations  unfiltered, pages of 100 (its
                                 ResourceId filter is not documented to take several
                                 values), assigned to the VPC each association names

An optional `FactCache` (a warm Lambda container keeps one) spares repeated reads:
task definitions (immutable per ARN) without expiry, cluster items and per-VPC network facts
for a TTL. Flow logs are never cached (one may name a task ENI created since).

A failed call marks the raw facts it would have produced as unavailable (bundle
`errors[fact]`) for the tasks concerned and the scan goes on; failures that lose tasks
(ListClusters, ListTasks, DescribeTasks) go to `CollectResult.errors`. Missing or rejected
credentials raise `CredentialsError` at once.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, NamedTuple

from fargate_audit.core import ingress
from fargate_audit.core.errors import CredentialsError, ScanError
from fargate_audit.edge.aws import (
    AWS_ERRORS,
    NO_REGION_MESSAGE,
    Clients,
    error_code,
    failure_message,
    timestamps_as_text,
)

RawTask = dict[str, Any]
Progress = Callable[[int, int, str], None]

RAW_FACTS = (
    "task_definition",
    "cluster",
    "eni",
    "security_groups",
    "route_tables",
    "network_acls",
    "flow_logs",
    "vpc_endpoints",
    "nat_gateways",
    "query_log_associations",
    "load_balancing",
)

ECS_PAGE_SIZE = 100  # ListClusters, ListTasks
RESOLVER_PAGE_SIZE = 100  # ListResolverQueryLogConfigAssociations (1-100)
DESCRIBE_TASKS_BATCH = 100
DESCRIBE_CLUSTERS_BATCH = 100
EC2_PAGE_SIZE = 1000
FILTER_VALUES_MAX = 200  # values per EC2 filter
ELB_PAGE_SIZE = 400  # DescribeTargetGroups, DescribeListeners, DescribeRules (1-400)
ELB_ARNS_MAX = 20  # DescribeLoadBalancers LoadBalancerArns
# More wanted ENIs than this: page through their subnets (1,000 ENIs a page) instead of
# id filters (200 ids a call). Above two id calls the subnet scan is cheaper unless the
# subnets hold 2.5x more non-task ENIs than task ENIs.
ENI_SUBNET_SCAN_ABOVE = 400

ENI_ATTACHMENT_TYPES = ("ElasticNetworkInterface", "eni")  # DescribeTasks / ECS events
FARGATE_CAPACITY_PROVIDERS = ("FARGATE", "FARGATE_SPOT")


class _VpcFactCall(NamedTuple):
    fact: str
    call: str  # e.g. "DescribeSubnets"; the result list is under "Subnets"
    page_size: int
    filter_param: str = "Filters"  # DescribeNatGateways takes "Filter"

    @property
    def method(self) -> str:
        return re.sub(r"(?<!^)(?=[A-Z])", "_", self.call).lower()

    @property
    def result_key(self) -> str:
        return self.call.removeprefix("Describe")


VPC_FACT_CALLS = (
    _VpcFactCall("security_groups", "DescribeSecurityGroups", 1000),
    _VpcFactCall("route_tables", "DescribeRouteTables", 100),
    _VpcFactCall("network_acls", "DescribeNetworkAcls", 1000),
    _VpcFactCall("vpc_endpoints", "DescribeVpcEndpoints", 1000),
    _VpcFactCall("nat_gateways", "DescribeNatGateways", 1000, "Filter"),
)
VPC_FACTS = tuple(spec.fact for spec in VPC_FACT_CALLS) + ("flow_logs", "query_log_associations")
# The event path reads the same VPC facts as a scan.
EVENT_VPC_FACT_CALLS = VPC_FACT_CALLS


class FactCache:
    """Facts reused across collections in one process (a warm Lambda container).

    Task definitions are immutable per ARN: kept without expiry. Cluster items (settings
    may change) and the network facts of a VPC (everything but flow logs) are reused for
    `ttl_seconds` (0: never). Only complete, error-free facts are stored. Entries are
    shared, never copied: consumers (the normaliser) do not mutate their input.
    """

    MAX_ENTRIES = 2000  # per kind; the oldest entry goes first

    def __init__(self, ttl_seconds: float = 300, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = float(ttl_seconds)
        self._clock = clock
        self._task_definitions: dict[str, dict] = {}
        self._clusters: dict[str, tuple[float, dict]] = {}
        self._vpcs: dict[tuple[str, str], tuple[float, dict]] = {}

    @staticmethod
    def _put(store: dict, key, value) -> None:
        store.pop(key, None)
        store[key] = value
        while len(store) > FactCache.MAX_ENTRIES:
            store.pop(next(iter(store)))

    def _fresh(self, store: dict, key) -> dict | None:
        entry = store.get(key)
        if entry is None:
            return None
        fetched_at, value = entry
        if self.ttl <= 0 or self._clock() - fetched_at >= self.ttl:
            store.pop(key, None)
            return None
        return value

    def task_definition(self, arn: str) -> dict | None:
        return self._task_definitions.get(arn)

    def put_task_definition(self, arn: str, definition: dict) -> None:
        self._put(self._task_definitions, arn, definition)

    def cluster(self, arn: str) -> dict | None:
        return self._fresh(self._clusters, arn)

    def put_cluster(self, arn: str, item: dict) -> None:
        if self.ttl > 0:
            self._put(self._clusters, arn, (self._clock(), item))

    def now(self) -> float:
        """The cache's clock now (``vpc``'s ``fetched_since``)."""
        return self._clock()

    def vpc(self, region: str, vpc_id: str, fetched_since: float | None = None) -> dict | None:
        """The VPC's facts unless expired, or, with ``fetched_since`` (a :meth:`now`
        reading), fetched before then."""
        facts = self._fresh(self._vpcs, (region, vpc_id))
        if (
            facts is not None
            and fetched_since is not None
            and self._vpcs[(region, vpc_id)][0] < fetched_since
        ):
            return None
        return facts

    def put_vpc(self, region: str, vpc_id: str, facts: dict) -> None:
        if self.ttl > 0:
            self._put(self._vpcs, (region, vpc_id), (self._clock(), facts))

    def forget_vpc(self, region: str, vpc_id: str) -> None:
        self._vpcs.pop((region, vpc_id), None)

    def clear(self) -> None:
        self._task_definitions.clear()
        self._clusters.clear()
        self._vpcs.clear()


@dataclass
class CollectResult:
    raw_tasks: list[RawTask] = field(default_factory=list)  # running Fargate tasks only
    skipped: list[dict] = field(default_factory=list)  # {"task_arn", "reason"}
    scope: dict = field(default_factory=dict)  # {"accounts", "regions", "clusters"}
    errors: list[dict] = field(default_factory=list)  # {"call", "region", "resource", "message"}
    api_calls: dict[str, int] = field(default_factory=dict)  # "ecs.DescribeTasks": n
    # given clusters found in no region, when the caller decides (report_missing_clusters
    # false): {ref: the error entry it would have been}
    unfound_clusters: dict[str, dict] = field(default_factory=dict)


# ---------------------------------------------------------------------------- entry points


def collect(
    session,
    regions: list[str] | None = None,
    clusters: list[str] | None = None,
    progress: Progress | None = None,
    *,
    clients: Clients | None = None,
    cache: FactCache | None = None,
    refresh_vpcs: bool = False,
    refreshed_since: float | None = None,
    report_missing_clusters: bool = True,
) -> CollectResult:
    """Collect raw bundles for every running Fargate task in scope.

    session: a boto3 Session (may be None when `clients` is given); regions: None for the
    session's region; clusters: names or ARNs, None for all; progress(done, total, stage);
    clients: injected clients (tests), default `Clients(session)`; cache: a FactCache to
    read and fill; refresh_vpcs: fetch every VPC's facts afresh (and refill the cache),
    but for those the cache took at or after `refreshed_since` (a `cache.now()` reading:
    the sweep messages of one worker invocation refresh a VPC once). A given cluster found
    in no region is a scope error, or, with ``report_missing_clusters`` false, goes in
    ``unfound_clusters`` (an organization scan decides over all its accounts).
    """
    clients = clients if clients is not None else Clients(session)
    # a cluster ARN names its region: it is looked up there only (that region joins the
    # scope), a cluster name in each region of the scope
    arn_regions = [r for r in dict.fromkeys(arn_region(ref) for ref in clusters or ()) if r]
    if not regions and arn_regions and all(arn_region(ref) for ref in clusters or ()):
        regions = arn_regions  # only ARNs and no region asked for: their regions are the scope
    if not regions:
        region = getattr(session, "region_name", None) if session is not None else None
        if not region:
            raise CredentialsError(NO_REGION_MESSAGE)
        regions = [region]
    regions = list(dict.fromkeys(regions))
    name_regions = frozenset(regions)
    regions += [r for r in arn_regions if r not in name_regions]
    before = clients.counter.snapshot()
    result = CollectResult(scope={"accounts": [], "regions": regions, "clusters": []})

    scans = [
        _RegionScan(
            clients, region, result, cache=cache, refresh_vpcs=refresh_vpcs, refreshed_since=refreshed_since
        )
        for region in regions
    ]
    if clusters:
        _discover_given(scans, clusters, name_regions, report_missing_clusters)
    else:
        for scan in scans:
            scan.discover(None)
    tracker = _Progress(progress, sum(len(scan.task_arns()) for scan in scans))
    tracker.report("list tasks")
    for scan in scans:
        scan.describe(tracker)
        scan.enrich()

    if result.errors and not any(scan.listed_any for scan in scans):
        first = result.errors[0]
        error = ScanError(f"{first['message']} ({first['region']}): no cluster in scope could be listed")
        error.refused = f"ecs:{first['message']}"  # the refused call, e.g. ecs:ListClusters: Code: message
        raise error
    _finish_scope(result)
    result.api_calls = clients.counter.since(before)
    return result


def collect_tasks(
    clients,
    region: str,
    cluster_arn: str | None,
    tasks: Iterable[dict],
    *,
    cache: FactCache | None = None,
    refresh_vpcs: bool = False,
    refreshed_since: float | None = None,
) -> CollectResult:
    """The same as `collect` for tasks already described: `DescribeTasks` items or ECS task
    state change `detail` objects (event path). `clients` is a `Clients` or a boto3 Session.
    cache / refresh_vpcs / refreshed_since: as for `collect` (a Config change of a VPC's
    resource refreshes)."""
    if not isinstance(clients, Clients):
        clients = Clients(clients)
    before = clients.counter.snapshot()
    result = CollectResult(
        scope={"accounts": [], "regions": [region], "clusters": [cluster_arn] if cluster_arn else []}
    )
    scan = _RegionScan(
        clients,
        region,
        result,
        cache=cache,
        refresh_vpcs=refresh_vpcs,
        refreshed_since=refreshed_since,
        vpc_fact_calls=EVENT_VPC_FACT_CALLS,
    )
    for task in tasks:
        task = jsonable(task)
        if cluster_arn and not task.get("clusterArn"):
            task["clusterArn"] = cluster_arn
        scan.add_described(task)
    scan.enrich()
    _finish_scope(result)
    result.api_calls = clients.counter.since(before)
    return result


# ---------------------------------------------------------------------------- helpers


def jsonable(value: Any) -> Any:
    """A deep copy with every datetime/date turned into an ISO-8601 string."""
    if isinstance(value, dict):
        return {key: jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(item) for item in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def own_jsonable(value: Any) -> Any:
    """:func:`jsonable` for a response this module owns (botocore's parsed response):
    converted in place, without a deep copy, which at thousands of tasks costs more CPU
    and transient memory than the conversion itself. Returns ``value``. Exact type tests
    (botocore builds plain dicts, lists and datetimes) keep the walk cheap; anything else
    goes through :func:`jsonable`."""
    kind = type(value)
    if kind is not dict and kind is not list:
        return jsonable(value)
    for key, item in value.items() if kind is dict else enumerate(value):
        item_kind = type(item)
        if item_kind is dict or item_kind is list:
            own_jsonable(item)
        elif item_kind is not str and item_kind is not int and item_kind is not bool and item is not None:
            value[key] = _scalar(item)
    return value


def _as_is(value: Any) -> Any:
    return value


def json_ready(aws_client) -> Callable[[Any], Any]:
    """What makes ``aws_client``'s parsed responses JSON-ready: nothing when it gives
    timestamps as text (the clients edge.aws.client makes), else :func:`own_jsonable`."""
    return _as_is if timestamps_as_text(aws_client) else own_jsonable


def _scalar(item: Any) -> Any:
    if isinstance(item, dict | list):
        return own_jsonable(item)
    return jsonable(item)


def account_of(arn: str) -> str | None:
    parts = arn.split(":")
    return parts[4] if len(parts) > 5 and parts[4] else None


def region_of(arn: str) -> str | None:
    parts = arn.split(":")
    return parts[3] if len(parts) > 5 and parts[3] else None


def skip_reason(task: dict) -> str | None:
    """None for a running Fargate task, else why it is not audited."""
    launch_type = task.get("launchType")
    if launch_type:
        if launch_type != "FARGATE":
            return f"launch type {launch_type}"
    else:
        provider = task.get("capacityProviderName")
        if provider not in FARGATE_CAPACITY_PROVIDERS:
            return f"capacity provider {provider}" if provider else "no launch type reported"
    status = task.get("lastStatus")
    if status != "RUNNING":
        return f"lastStatus {status}" if status else "no lastStatus reported"
    return None


def eni_attachment(task: dict) -> tuple[str | None, str | None]:
    """(networkInterfaceId, subnetId) from the task's ENI attachment, (None, None) if none."""
    for attachment in task.get("attachments") or []:
        if attachment.get("type") not in ENI_ATTACHMENT_TYPES:
            continue
        details = {d.get("name"): d.get("value") for d in attachment.get("details") or []}
        if details.get("networkInterfaceId"):
            return details["networkInterfaceId"], details.get("subnetId")
    return None, None


def cluster_in_scope(ref: str, account: str, region: str) -> bool:
    """Whether a given cluster (a name, or an ARN naming its account and region) is looked
    up in that account and region."""
    named = arn_region(ref)
    return named is None or (named == region and account_of(ref) == account)


def arn_region(ref: str) -> str | None:
    """The region of a cluster ARN (``arn:PARTITION:ecs:REGION:ACCOUNT:cluster/NAME``);
    None for a name."""
    parts = ref.split(":")
    return parts[3] or None if len(parts) == 6 and parts[0] == "arn" and parts[2] == "ecs" else None


def _discover_given(
    scans: list[_RegionScan], clusters: list[str], name_regions: frozenset[str], report: bool
) -> None:
    """The given clusters of each region scanned: an ARN in the region it names only, a
    name in each of ``name_regions``. A name found in one region is not missing from the
    others (it is a scope error only when found nowhere, named once, in the first region)."""
    refs = list(dict.fromkeys(clusters))

    def looked_up_in(ref: str, region: str) -> bool:
        named = arn_region(ref)
        return named == region if named else region in name_regions

    unfound: dict[str, list[tuple[_RegionScan, str]]] = {}
    for scan in scans:
        mine = [ref for ref in refs if looked_up_in(ref, scan.region)]
        for ref, message in scan.discover(mine, report_missing=False).items():
            unfound.setdefault(ref, []).append((scan, message))
    for ref, misses in unfound.items():
        if len(misses) == sum(1 for scan in scans if looked_up_in(ref, scan.region)):
            scan, message = misses[0]
            if report:
                scan._lost("DescribeClusters", ref, message)
            else:
                scan.result.unfound_clusters[ref] = {
                    "call": "DescribeClusters",
                    "region": scan.region,
                    "resource": ref,
                    "message": message,
                }


def _cluster_name(name_or_arn: str) -> str:
    return name_or_arn.rsplit("/", 1)[-1]


def _chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _pages(aws_client, method: str, page_size: int, **params) -> Iterator[dict]:
    paginator = aws_client.get_paginator(method)
    yield from paginator.paginate(PaginationConfig={"PageSize": page_size}, **params)


def _task_pages(ecs, cluster: str) -> Iterator[dict]:
    """ListTasks of one cluster, pages of 100: desiredStatus RUNNING (the API's default) and
    no launch-type filter (a Fargate task is told from DescribeTasks: ``skip_reason``). The
    scan and the sweep planner list with this one call, so both see the same tasks."""
    yield from _pages(ecs, "list_tasks", ECS_PAGE_SIZE, cluster=cluster)


def _finish_scope(result: CollectResult) -> None:
    accounts = {account_of(arn) for arn in result.scope["clusters"]}
    accounts.update(raw["account_id"] for raw in result.raw_tasks)
    accounts.update(account_of(item["task_arn"]) for item in result.skipped)
    result.scope["accounts"] = sorted(a for a in accounts if a)
    result.scope["clusters"] = list(dict.fromkeys(result.scope["clusters"]))


class _Progress:
    def __init__(self, callback: Progress | None, total: int) -> None:
        self.callback, self.total, self.done = callback, total, 0

    def report(self, stage: str) -> None:
        if self.callback is not None:
            self.callback(self.done, self.total, stage)

    def advance(self, count: int, stage: str) -> None:
        self.done += count
        self.report(stage)


# ---------------------------------------------------------------------------- one region


class _RegionScan:
    """The reads of one region: its own clients, caches and task list."""

    def __init__(
        self,
        clients: Clients,
        region: str,
        result: CollectResult,
        cache: FactCache | None = None,
        refresh_vpcs: bool = False,
        vpc_fact_calls: tuple[_VpcFactCall, ...] = VPC_FACT_CALLS,
        refreshed_since: float | None = None,
    ) -> None:
        self.ecs = clients.ecs(region)
        self.ec2 = clients.ec2(region)
        self._ecs_json, self._ec2_json = json_ready(self.ecs), json_ready(self.ec2)
        self._clients = clients
        self.region = self.ecs.meta.region_name or region
        self.result = result
        self.cache = cache
        self.refresh_vpcs = refresh_vpcs
        self.refreshed_since = refreshed_since
        self.vpc_fact_calls = vpc_fact_calls
        self.listed_any = False  # ListClusters or some ListTasks succeeded
        # cluster key (ARN, or the name given when it could not be resolved) -> task ARNs
        self._listed: dict[str, list[str]] = {}
        self._seen_tasks: set[str] = set()
        self._audited: list[dict] = []
        self._clusters: dict[str, tuple[dict | None, str | None]] = {}  # ARN -> (item, error)

    # -- bookkeeping

    def _lost(self, call: str, resource: str, message: str) -> None:
        self.result.errors.append(
            {"call": call, "region": self.region, "resource": resource, "message": message}
        )

    def task_arns(self) -> list[str]:
        return [arn for arns in self._listed.values() for arn in arns]

    def add_described(self, task: dict) -> None:
        arn = task.get("taskArn", "")
        reason = skip_reason(task)
        if reason:
            self.result.skipped.append({"task_arn": arn, "reason": reason})
        else:
            self._audited.append(task)

    # -- clusters and task lists

    def discover(self, clusters: list[str] | None, report_missing: bool = True) -> dict[str, str]:
        """List the given clusters (names or ARNs; None: every cluster of the region) and
        their tasks. Returns {ref: message} of the given clusters not found here, each
        also a scope error unless ``report_missing`` is false (the caller decides)."""
        # a cluster given twice (by name and by ARN) is listed once: a second listing would
        # find its tasks already seen and leave the cluster empty
        missing: dict[str, str] = {}
        if clusters is None:
            keys = self._list_clusters()
        else:
            keys = self._resolve_clusters(list(dict.fromkeys(clusters)), missing) if clusters else []
        if report_missing:
            for ref, message in missing.items():
                self._lost("DescribeClusters", ref, message)
        keys = list(dict.fromkeys(keys))
        self.result.scope["clusters"].extend(keys)
        for key in keys:
            self._listed[key] = self._list_tasks(key)
        return missing

    def _list_clusters(self) -> list[str]:
        """Every cluster ARN of the region (those of the pages read before a failure)."""
        arns: list[str] = []
        try:
            for page in _pages(self.ecs, "list_clusters", ECS_PAGE_SIZE):
                arns.extend(page.get("clusterArns", []))
        except AWS_ERRORS as exc:
            self._lost("ListClusters", self.region, failure_message(exc, "ListClusters", "ecs"))
        else:
            self.listed_any = True
        return list(dict.fromkeys(arns))

    def _resolve_clusters(self, refs: list[str], missing_out: dict[str, str]) -> list[str]:
        """Given names/ARNs -> cluster ARNs, describing them once (the facts are kept);
        those not found go in ``missing_out`` ({ref: message})."""
        keys: list[str] = []
        for batch in _chunks(refs, DESCRIBE_CLUSTERS_BATCH):
            found, missing, error = self._describe_clusters(batch)
            if error:  # keep the refs as given: ListTasks accepts names; the facts stay unknown
                for ref in batch:
                    self._clusters[ref] = (None, error)
                keys.extend(batch)
                continue
            by_name = {item.get("clusterName"): item for item in found}
            for ref in batch:
                name = _cluster_name(ref)
                if name in by_name:
                    keys.append(by_name[name]["clusterArn"])
                else:
                    reason = missing.get(ref) or missing.get(name) or "not returned"
                    missing_out[ref] = f"DescribeClusters: {reason}: cluster {ref} not found"
        return keys

    def _describe_clusters(self, batch: list[str]) -> tuple[list[dict], dict[str, str], str | None]:
        """One DescribeClusters call: (items, {name_or_arn: failure reason}, error); items
        are cached by ARN."""
        try:
            response = self.ecs.describe_clusters(clusters=batch, include=["SETTINGS"])
        except AWS_ERRORS as exc:
            return [], {}, failure_message(exc, "DescribeClusters", "ecs")
        items = [self._ecs_json(item) for item in response.get("clusters", [])]
        for item in items:
            self._clusters[item["clusterArn"]] = (item, None)
            if self.cache is not None:
                self.cache.put_cluster(item["clusterArn"], item)
        missing: dict[str, str] = {}
        for failure in response.get("failures", []):
            arn = failure.get("arn", "")
            reason = failure.get("reason") or "failure"
            missing[arn] = reason
            missing[_cluster_name(arn)] = reason
            self._clusters.setdefault(arn, (None, f"DescribeClusters: {reason}: {arn}"))
        return items, missing, None

    def _list_tasks(self, cluster: str) -> list[str]:
        arns: list[str] = []
        try:
            for page in _task_pages(self.ecs, cluster):
                arns.extend(page.get("taskArns", []))
        except AWS_ERRORS as exc:
            self._lost("ListTasks", cluster, failure_message(exc, "ListTasks", "ecs"))
            if arns:  # the pages read before the failure are audited; the error says the rest
                self.listed_any = True
        else:
            self.listed_any = True
        fresh = [arn for arn in dict.fromkeys(arns) if arn not in self._seen_tasks]
        self._seen_tasks.update(fresh)
        return fresh

    # -- tasks

    def describe(self, tracker: _Progress) -> None:
        for cluster, arns in self._listed.items():
            for batch in _chunks(arns, DESCRIBE_TASKS_BATCH):
                try:
                    response = self.ecs.describe_tasks(cluster=cluster, tasks=batch)
                except AWS_ERRORS as exc:
                    message = failure_message(exc, "DescribeTasks", "ecs")
                    self._lost("DescribeTasks", cluster, f"{message} ({len(batch)} tasks not audited)")
                else:
                    wanted = set(batch)
                    answered: set[str] = set()
                    for task in response.get("tasks", []):
                        if task.get("taskArn") in wanted:
                            answered.add(task["taskArn"])
                            self.add_described(self._ecs_json(task))
                    for failure in response.get("failures", []):
                        arn = failure.get("arn", "")
                        answered.add(arn)
                        self._lost(
                            "DescribeTasks",
                            arn,
                            f"DescribeTasks: {failure.get('reason') or 'failure'}: {arn}",
                        )
                    for arn in batch:  # neither described nor listed as a failure: never silent
                        if arn not in answered:
                            self._lost("DescribeTasks", arn, f"DescribeTasks: not returned: {arn}")
                tracker.advance(len(batch), "describe tasks")

    # -- facts around the audited tasks

    def enrich(self) -> None:
        tasks, self._audited = self._audited, []
        if not tasks:
            return
        clusters = self._cluster_facts(tasks)
        definitions = self._task_definitions(tasks)
        enis, eni_errors = self._network_interfaces(tasks)
        vpcs, vpc_errors = self._vpc_facts(enis)
        for task in tasks:
            self.result.raw_tasks.append(
                self._bundle(task, clusters, definitions, enis, eni_errors, vpcs, vpc_errors)
            )

    def _bundle(self, task, clusters, definitions, enis, eni_errors, vpcs, vpc_errors) -> RawTask:
        errors: dict[str, str] = {}
        cluster, cluster_error = clusters.get(
            task.get("clusterArn", ""), (None, "DescribeTasks: the task reports no clusterArn")
        )
        if cluster is None:
            errors["cluster"] = cluster_error or "DescribeClusters: cluster not returned"
        definition, definition_error = definitions.get(
            task.get("taskDefinitionArn", ""), (None, "DescribeTasks: the task reports no taskDefinitionArn")
        )
        if definition is None:
            errors["task_definition"] = (
                definition_error or "DescribeTaskDefinition: no taskDefinition returned"
            )
        eni_id, _ = eni_attachment(task)
        eni = enis.get(eni_id) if eni_id else None
        vpc = None
        if eni_id is None:
            errors["eni"] = "DescribeTasks: no ElasticNetworkInterface attachment on the task"
        elif eni is None:
            errors["eni"] = (
                eni_errors.get(eni_id) or f"DescribeNetworkInterfaces: {eni_id} not found (vanished)"
            )
        else:
            vpc = vpcs.get(eni.get("VpcId"))
            errors.update(vpc_errors.get(eni.get("VpcId"), {}))
        return {
            "account_id": account_of(task.get("taskArn", "")),
            "region": self.region,
            "task": task,
            "task_definition": definition,
            "cluster": cluster,
            "eni": eni,
            "vpc": vpc,
            "errors": errors,
        }

    def _cluster_facts(self, tasks: list[dict]) -> dict[str, tuple[dict | None, str | None]]:
        wanted = [arn for arn in dict.fromkeys(t.get("clusterArn") for t in tasks) if arn]
        for arn in wanted:  # a cluster given by name whose describe failed is cached by name
            if arn not in self._clusters and _cluster_name(arn) in self._clusters:
                self._clusters[arn] = self._clusters[_cluster_name(arn)]
            cached = self.cache.cluster(arn) if self.cache is not None and arn not in self._clusters else None
            if cached is not None:
                self._clusters[arn] = (cached, None)
        todo = [arn for arn in wanted if arn not in self._clusters]
        for batch in _chunks(todo, DESCRIBE_CLUSTERS_BATCH):
            _, _, error = self._describe_clusters(batch)
            for arn in batch:
                if error or arn not in self._clusters:
                    self._clusters[arn] = (None, error or f"DescribeClusters: not returned: {arn}")
        return self._clusters

    def _task_definitions(self, tasks: list[dict]) -> dict[str, tuple[dict | None, str | None]]:
        definitions: dict[str, tuple[dict | None, str | None]] = {}
        for arn in dict.fromkeys(t.get("taskDefinitionArn") for t in tasks):
            if not arn:
                continue
            cached = self.cache.task_definition(arn) if self.cache is not None else None
            if cached is not None:
                definitions[arn] = (cached, None)
                continue
            try:
                response = self.ecs.describe_task_definition(taskDefinition=arn)
            except AWS_ERRORS as exc:
                definitions[arn] = (None, failure_message(exc, "DescribeTaskDefinition", "ecs"))
            else:
                definitions[arn] = (self._ecs_json(response.get("taskDefinition")), None)
                if self.cache is not None and definitions[arn][0]:
                    self.cache.put_task_definition(arn, definitions[arn][0])
        return definitions

    def _network_interfaces(self, tasks: list[dict]) -> tuple[dict[str, dict], dict[str, str]]:
        """ENIs of the tasks by id, and an error per ENI whose describe call failed."""
        wanted: dict[str, str | None] = {}
        for task in tasks:
            eni_id, subnet_id = eni_attachment(task)
            if eni_id:
                wanted[eni_id] = subnet_id
        found: dict[str, dict] = {}
        errors: dict[str, str] = {}

        def fetch(filter_name: str, values: list[str], affected: list[str]) -> None:
            try:
                for page in _pages(
                    self.ec2,
                    "describe_network_interfaces",
                    EC2_PAGE_SIZE,
                    Filters=[{"Name": filter_name, "Values": values}],
                    IncludeManagedResources=True,
                ):
                    for eni in page.get("NetworkInterfaces", []):
                        if eni.get("NetworkInterfaceId") in wanted:
                            found[eni["NetworkInterfaceId"]] = self._ec2_json(eni)
            except AWS_ERRORS as exc:
                message = failure_message(exc, "DescribeNetworkInterfaces", "ec2")
                for eni_id in affected:
                    errors.setdefault(eni_id, message)

        by_id = sorted(wanted)
        if len(wanted) > ENI_SUBNET_SCAN_ABOVE:
            by_subnet: dict[str, list[str]] = {}
            for eni_id, subnet_id in wanted.items():
                if subnet_id:
                    by_subnet.setdefault(subnet_id, []).append(eni_id)
            by_id = sorted(eni_id for eni_id, subnet_id in wanted.items() if not subnet_id)
            for subnets in _chunks(sorted(by_subnet), FILTER_VALUES_MAX):
                fetch("subnet-id", subnets, [eni_id for s in subnets for eni_id in by_subnet[s]])
        for ids in _chunks(by_id, FILTER_VALUES_MAX):
            fetch("network-interface-id", ids, ids)
        return found, {eni_id: msg for eni_id, msg in errors.items() if eni_id not in found}

    def _vpc_facts(self, enis: dict[str, dict]) -> tuple[dict[str, dict], dict[str, dict[str, str]]]:
        """One shared facts dict per VPC of the tasks, and the facts that failed per VPC."""
        vpc_ids = sorted({eni["VpcId"] for eni in enis.values() if eni.get("VpcId")})
        vpcs: dict[str, dict] = {
            vpc_id: {"vpc_id": vpc_id} | {fact: [] for fact in VPC_FACTS} for vpc_id in vpc_ids
        }
        errors: dict[str, dict[str, str]] = {vpc_id: {} for vpc_id in vpc_ids}
        if not vpc_ids:
            return vpcs, errors
        to_fetch = vpc_ids
        if self.cache is not None and (not self.refresh_vpcs or self.refreshed_since is not None):
            since = self.refreshed_since if self.refresh_vpcs else None
            to_fetch = []
            for vpc_id in vpc_ids:
                cached = self.cache.vpc(self.region, vpc_id, fetched_since=since)
                if cached is None:
                    to_fetch.append(vpc_id)
                else:  # a fresh dict: this collection's flow logs must not reach the cache
                    vpcs[vpc_id] = dict(cached, flow_logs=[])
        for spec in self.vpc_fact_calls if to_fetch else ():
            for chunk in _chunks(to_fetch, FILTER_VALUES_MAX):
                try:
                    for page in _pages(
                        self.ec2,
                        spec.method,
                        spec.page_size,
                        **{spec.filter_param: [{"Name": "vpc-id", "Values": chunk}]},
                    ):
                        for item in page.get(spec.result_key, []):
                            if item.get("VpcId") in vpcs:
                                vpcs[item["VpcId"]][spec.fact].append(self._ec2_json(item))
                except AWS_ERRORS as exc:
                    message = failure_message(exc, spec.call, "ec2")
                    for vpc_id in chunk:
                        vpcs[vpc_id][spec.fact] = []  # a partial list must not be trusted
                        errors[vpc_id][spec.fact] = message
        if to_fetch:
            self._query_log_associations(vpcs, errors, to_fetch)
        self._associated_security_groups(vpcs, errors, enis)
        if self.cache is not None:
            for vpc_id in to_fetch:
                if not errors[vpc_id] and "security_group_errors" not in vpcs[vpc_id]:
                    self.cache.put_vpc(self.region, vpc_id, dict(vpcs[vpc_id], flow_logs=[]))
        self._flow_logs(vpcs, errors, enis)
        _LoadBalancing(self, vpcs, enis).collect()
        return vpcs, errors

    def _associated_security_groups(
        self, vpcs: dict[str, dict], errors: dict[str, dict[str, str]], enis: dict[str, dict]
    ) -> None:
        """The attached groups the VPC's listing lacks, read by id. The ``vpc-id`` filter
        names the VPC a group was created in; a group associated with another VPC
        (AssociateSecurityGroupVpc) is attached to ENIs there too. No request when every
        attached group was listed. A failed read leaves the listing whole and names the
        groups it concerns (``security_group_errors``: {group id: error})."""
        wanted: dict[str, set[str]] = {}
        for eni in enis.values():
            vpc_id = eni.get("VpcId")
            if vpc_id not in vpcs or "security_groups" in errors[vpc_id]:
                continue
            for group in eni.get("Groups") or []:
                if group.get("GroupId"):
                    wanted.setdefault(vpc_id, set()).add(group["GroupId"])
        missing: dict[str, list[str]] = {}
        for vpc_id, group_ids in wanted.items():
            listed = {sg.get("GroupId") for sg in vpcs[vpc_id]["security_groups"]}
            for group_id in group_ids - listed:
                missing.setdefault(group_id, []).append(vpc_id)
        for chunk in _chunks(sorted(missing), FILTER_VALUES_MAX):
            try:
                for page in _pages(
                    self.ec2,
                    "describe_security_groups",
                    EC2_PAGE_SIZE,
                    Filters=[{"Name": "group-id", "Values": chunk}],
                ):
                    for group in page.get("SecurityGroups", []):
                        for vpc_id in missing.get(group.get("GroupId"), ()):
                            # a new list: a cached VPC's list is shared with the cache
                            vpcs[vpc_id]["security_groups"] = [
                                *vpcs[vpc_id]["security_groups"],
                                self._ec2_json(group),
                            ]
            except AWS_ERRORS as exc:
                # the VPC's own listing stays whole: only the tasks holding these groups are
                # concerned (posture names the groups and this error)
                message = failure_message(exc, "DescribeSecurityGroups", "ec2")
                for group_id in chunk:
                    for vpc_id in missing[group_id]:
                        unread = dict(vpcs[vpc_id].get("security_group_errors") or {})
                        vpcs[vpc_id]["security_group_errors"] = unread | {group_id: message}

    def _query_log_associations(
        self, vpcs: dict[str, dict], errors: dict[str, dict[str, str]], vpc_ids: list[str]
    ) -> None:
        """Resolver query-log associations of the VPCs (EGR-02): the region's associations,
        paged, each assigned to the VPC its ResourceId names (one listing for all VPCs)."""
        wanted = set(vpc_ids)
        try:
            resolver = self._clients.get("route53resolver", self.region)
            for page in _pages(resolver, "list_resolver_query_log_config_associations", RESOLVER_PAGE_SIZE):
                for association in page.get("ResolverQueryLogConfigAssociations", []):
                    vpc_id = association.get("ResourceId")
                    if vpc_id in wanted:
                        vpcs[vpc_id]["query_log_associations"].append(jsonable(association))
        except AWS_ERRORS as exc:
            message = failure_message(exc, "ListResolverQueryLogConfigAssociations", "route53resolver")
            for vpc_id in vpc_ids:
                vpcs[vpc_id]["query_log_associations"] = []
                errors[vpc_id]["query_log_associations"] = message

    def _flow_logs(
        self, vpcs: dict[str, dict], errors: dict[str, dict[str, str]], enis: dict[str, dict]
    ) -> None:
        # a flow log counts when it names a VPC, or the ENI or subnet of an audited task
        owner: dict[str, str] = {vpc_id: vpc_id for vpc_id in vpcs}
        for eni_id, eni in enis.items():
            if eni.get("VpcId") in vpcs:
                owner[eni_id] = eni["VpcId"]
                if eni.get("SubnetId"):
                    owner[eni["SubnetId"]] = eni["VpcId"]
        try:
            for page in _pages(self.ec2, "describe_flow_logs", EC2_PAGE_SIZE):
                for flow_log in page.get("FlowLogs", []):
                    vpc_id = owner.get(flow_log.get("ResourceId", ""))
                    if vpc_id:
                        vpcs[vpc_id]["flow_logs"].append(jsonable(flow_log))
        except AWS_ERRORS as exc:
            message = failure_message(exc, "DescribeFlowLogs", "ec2")
            for vpc_id, vpc in vpcs.items():
                vpc["flow_logs"] = []
                errors[vpc_id]["flow_logs"] = message


# ---------------------------------------------------------------------------- load balancers


def _addresses(eni: dict) -> set[str]:
    """The private IPv4 and IPv6 addresses of an ENI (compressed: targets compare so)."""
    found = [eni.get("PrivateIpAddress"), eni.get("Ipv6Address")]
    found += [a.get("PrivateIpAddress") for a in eni.get("PrivateIpAddresses") or []]
    found += [a.get("Ipv6Address") for a in eni.get("Ipv6Addresses") or []]
    return {a for a in map(ingress.normalize_address, found) if a}


class _LoadBalancing:
    """The Elastic Load Balancing and WAF facts of one region's audited VPCs (each VPC's
    ``load_balancing``, core/ingress.py): read per region, never per task, and only as far
    as a load balancer can reach an audited task:

      DescribeTargetGroups            the region's groups, pages of 400 (the one request an
                                      estate without load balancers pays)
      DescribeTargetHealth            each ip group of an audited VPC
      DescribeLoadBalancers           the load balancers of the groups holding an audited
                                      task's address, 20 ARNs a call
      DescribeListeners / DescribeRules  internet-facing (not failed) ones; rules of HTTP(S)
                                      listeners only (network load balancers have none)
      DescribeTargetGroupAttributes   TCP and TLS groups of such network load balancers
      DescribeSubnets                 those load balancers' subnets (`subnet-id` filter)
      wafv2 GetWebACLForResource      such application load balancers forwarding to a group
                                      that holds an audited task

    A resource gone between the calls (LoadBalancerNotFound, ListenerNotFound,
    TargetGroupNotFound) is left out, not an error. Never cached: target registration
    changes with every task start."""

    GONE = frozenset({"LoadBalancerNotFound", "ListenerNotFound", "TargetGroupNotFound"})

    def __init__(self, scan: _RegionScan, vpcs: dict[str, dict], enis: dict[str, dict]) -> None:
        self.scan = scan
        self.facts: dict[str, dict] = {}
        for vpc_id, vpc in vpcs.items():
            vpc["load_balancing"] = self.facts[vpc_id] = {
                "target_groups": [],
                "load_balancers": {},
                "target_group_attributes": {},
                "subnets": {},
                "web_acls": {},
                "errors": {},
                "web_acl_errors": {},
            }
        self.enis = enis
        self._addresses: dict[str, set[str]] | None = None

    @property
    def addresses(self) -> dict[str, set[str]]:
        """VPC id -> the audited tasks' addresses in it (made when a group needs them)."""
        if self._addresses is None:
            self._addresses = {vpc_id: set() for vpc_id in self.facts}
            for eni in self.enis.values():
                if eni.get("VpcId") in self._addresses:
                    self._addresses[eni["VpcId"]] |= _addresses(eni)
        return self._addresses

    def _client(self, service: str):
        return self.scan._clients.get(service, self.scan.region)

    def _call(
        self, call: str, fetch: Callable[[], Any], service: str = "elasticloadbalancing"
    ) -> tuple[Any, str | None, bool]:
        """(result, error, gone) of one read (``service``: its IAM prefix)."""
        try:
            return fetch(), None, False
        except AWS_ERRORS as exc:
            if error_code(exc) in self.GONE:
                return None, None, True
            return None, failure_message(exc, call, service), False

    def collect(self) -> None:
        if not self.facts:
            return
        elbv2 = self._client("elbv2")
        self._json = json_ready(elbv2)
        groups, error, _ = self._call(
            "DescribeTargetGroups",
            lambda: [
                g
                for page in _pages(elbv2, "describe_target_groups", ELB_PAGE_SIZE)
                for g in page.get("TargetGroups", [])
            ],
        )
        if error:
            for facts in self.facts.values():
                facts["errors"]["*"] = error
            return
        registered: list[dict] = []
        for group in groups:
            vpc_id = group.get("VpcId")
            if str(group.get("TargetType") or "").lower() != "ip" or vpc_id not in self.facts:
                continue
            arn = group["TargetGroupArn"]
            health, error, gone = self._call(
                "DescribeTargetHealth",
                lambda arn=arn: elbv2.describe_target_health(TargetGroupArn=arn).get(
                    "TargetHealthDescriptions", []
                ),
            )
            if error:
                self.facts[vpc_id]["errors"]["*"] = error
            if error or gone:
                continue
            group = self._json(dict(group, Targets=health))
            self.facts[vpc_id]["target_groups"].append(group)
            if ingress.target_index([group], vpc_id).keys() & self.addresses[vpc_id]:
                registered.append(group)
        if registered:
            self._load_balancers(elbv2, registered)

    def _load_balancers(self, elbv2, registered: list[dict]) -> None:
        vpcs_of: dict[str, set[str]] = {}
        for group in registered:
            for arn in group.get("LoadBalancerArns") or []:
                vpcs_of.setdefault(arn, set()).add(group["VpcId"])
        found: dict[str, dict] = {}
        for batch in _chunks(sorted(vpcs_of), ELB_ARNS_MAX):
            items, error, gone = self._call(
                "DescribeLoadBalancers",
                lambda batch=batch: elbv2.describe_load_balancers(LoadBalancerArns=batch).get(
                    "LoadBalancers", []
                ),
            )
            if gone and len(batch) > 1:  # one of them is gone: which, one by one
                items = []
                for arn in batch:
                    item, error, _ = self._call(
                        "DescribeLoadBalancers",
                        lambda arn=arn: elbv2.describe_load_balancers(LoadBalancerArns=[arn]).get(
                            "LoadBalancers", []
                        ),
                    )
                    self._fault(error, [arn], vpcs_of)
                    items += item or []
            self._fault(error if not gone else None, batch, vpcs_of)
            found.update((item["LoadBalancerArn"], self._json(item)) for item in items or [])
        subnets: set[str] = set()
        for arn, item in list(found.items()):
            if not ingress.may_face_internet(item):
                self._keep(arn, item, vpcs_of)
                continue
            listeners = self._listeners(elbv2, arn, item, vpcs_of)
            if listeners is None:  # gone: no front door, nothing more to read for it
                del found[arn]
                continue
            item["Listeners"] = listeners
            subnets.update(z["SubnetId"] for z in item.get("AvailabilityZones") or [] if z.get("SubnetId"))
            self._keep(arn, item, vpcs_of)
        self._attributes(elbv2, registered, found)
        self._subnets(sorted(subnets), found, vpcs_of)
        self._web_acls(registered, found, vpcs_of)

    def _keep(self, arn: str, item: dict, vpcs_of: dict[str, set[str]]) -> None:
        for vpc_id in vpcs_of[arn]:
            self.facts[vpc_id]["load_balancers"][arn] = item

    def _fault(self, error: str | None, resources: Iterable[str], vpcs_of: dict[str, set[str]]) -> None:
        if error:
            for resource in resources:
                for vpc_id in vpcs_of.get(resource, ()):
                    self.facts[vpc_id]["errors"][resource] = error

    def _listeners(self, elbv2, arn: str, item: dict, vpcs_of) -> list[dict] | None:
        listeners, error, gone = self._call(
            "DescribeListeners",
            lambda: [
                self._json(listener)
                for page in _pages(elbv2, "describe_listeners", ELB_PAGE_SIZE, LoadBalancerArn=arn)
                for listener in page.get("Listeners", [])
            ],
        )
        if gone:
            return None
        self._fault(error, [arn], vpcs_of)
        kept = []
        for listener in listeners or []:
            if str(item.get("Type") or "").lower() == "application" and listener.get("Protocol") in (
                "HTTP",
                "HTTPS",
            ):
                rules, error, gone = self._call(
                    "DescribeRules",
                    lambda listener=listener: [
                        self._json(rule)
                        for page in _pages(
                            elbv2, "describe_rules", ELB_PAGE_SIZE, ListenerArn=listener["ListenerArn"]
                        )
                        for rule in page.get("Rules", [])
                    ],
                )
                self._fault(error, [arn], vpcs_of)
                if gone:
                    continue
                listener["Rules"] = rules or []
            kept.append(listener)
        return kept

    def _attributes(self, elbv2, registered: list[dict], found: dict[str, dict]) -> None:
        for group in registered:
            if str(group.get("Protocol") or "").upper() not in ("TCP", "TLS"):
                continue
            lbs = [found.get(arn) for arn in group.get("LoadBalancerArns") or []]
            if not any(
                lb and str(lb.get("Type") or "").lower() == "network" and ingress.may_face_internet(lb)
                for lb in lbs
            ):
                continue
            arn = group["TargetGroupArn"]
            attributes, error, gone = self._call(
                "DescribeTargetGroupAttributes",
                lambda arn=arn: elbv2.describe_target_group_attributes(TargetGroupArn=arn).get(
                    "Attributes", []
                ),
            )
            facts = self.facts[group["VpcId"]]
            if error:
                facts["errors"][arn] = error
            elif gone:
                facts["target_groups"] = [g for g in facts["target_groups"] if g["TargetGroupArn"] != arn]
            else:
                facts["target_group_attributes"][arn] = {a.get("Key"): a.get("Value") for a in attributes}

    def _subnets(self, subnet_ids: list[str], found: dict[str, dict], vpcs_of) -> None:
        if not subnet_ids:
            return
        owners: dict[str, set[str]] = {}
        for arn, item in found.items():
            for zone in item.get("AvailabilityZones") or []:
                owners.setdefault(zone.get("SubnetId"), set()).update(vpcs_of[arn])
        ec2 = self.scan.ec2
        for chunk in _chunks(subnet_ids, FILTER_VALUES_MAX):
            items, error, _ = self._call(
                "DescribeSubnets",
                lambda chunk=chunk: [
                    subnet
                    for page in _pages(
                        ec2,
                        "describe_subnets",
                        EC2_PAGE_SIZE,
                        Filters=[{"Name": "subnet-id", "Values": chunk}],
                    )
                    for subnet in page.get("Subnets", [])
                ],
                "ec2",
            )
            self._fault(error, chunk, owners)
            for subnet in items or []:
                for vpc_id in owners.get(subnet.get("SubnetId"), ()):
                    self.facts[vpc_id]["subnets"][subnet["SubnetId"]] = self.scan._ec2_json(subnet)

    def _web_acls(self, registered: list[dict], found: dict[str, dict], vpcs_of) -> None:
        wanted: set[str] = set()
        for group in registered:
            for arn in group.get("LoadBalancerArns") or []:
                item = found.get(arn) or {}
                if str(item.get("Type") or "").lower() == "application" and any(
                    ingress.forwards_to(listener, group["TargetGroupArn"])
                    for listener in item.get("Listeners") or []
                ):
                    wanted.add(arn)
        if not wanted:
            return
        wafv2 = self._client("wafv2")
        for arn in sorted(wanted):
            try:
                acl = (wafv2.get_web_acl_for_resource(ResourceArn=arn).get("WebACL") or {}).get("ARN")
            except AWS_ERRORS as exc:
                if error_code(exc) != "WAFNonexistentItemException":
                    for vpc_id in vpcs_of[arn]:
                        self.facts[vpc_id]["web_acl_errors"][arn] = failure_message(
                            exc, "GetWebACLForResource", "wafv2"
                        )
                    continue
                acl = None
            for vpc_id in vpcs_of[arn]:
                self.facts[vpc_id]["web_acls"][arn] = acl


# --------------------------------------------------------------------------- event pipeline reads


def list_clusters(clients: Clients, region: str) -> list[str]:
    """Every cluster ARN of the region, once each (ListClusters, pages of 100). AWS errors
    propagate: the caller decides what a failed listing means."""
    arns: list[str] = []
    for page in _pages(clients.ecs(region), "list_clusters", ECS_PAGE_SIZE):
        arns.extend(page.get("clusterArns", []))
    return list(dict.fromkeys(arns))


def list_tasks(clients: Clients, region: str, cluster: str) -> list[str]:
    """The task ARNs of one cluster, once each, as a scan lists them (``_task_pages``:
    ListTasks, pages of 100, running tasks of every launch type). AWS errors propagate: a
    listing that failed on any page is no listing (the caller decides what that means)."""
    arns: list[str] = []
    for page in _task_pages(clients.ecs(region), cluster):
        arns.extend(page.get("taskArns", []))
    return list(dict.fromkeys(arns))


def describe_tasks(
    clients: Clients, region: str, by_cluster: dict[str, list[str]], account: str | None = None
) -> tuple[dict[str, dict], dict[str, str]]:
    """DescribeTasks (100 per call, per cluster) of ``{cluster ARN: [task ARN]}``:
    ({ARN: task}, {ARN: failure}) where a failure is AWS's reason for that task (e.g.
    ``MISSING``: the task is gone) or the call's one-line error (``DescribeTasks: Code:
    message``).

    A deleted cluster's tasks are ``MISSING`` too: DescribeTasks refuses the cluster
    (``ClusterNotFoundException``), or answers with neither the task nor a failure for it
    (what an emulator does for an ``INACTIVE`` cluster); in the second case one
    DescribeClusters call (per 100 such clusters) confirms the cluster is ``INACTIVE`` or
    unknown (``MISSING``) before its tasks are given up, and otherwise they stay
    unaccounted for (the caller's error). Only a cluster of ``region`` (and of ``account``,
    when given: the account the clients read) is concluded gone: the clients cannot speak
    for another account's or region's cluster."""

    def own(cluster_arn: str) -> bool:
        return region_of(cluster_arn) == region and account in (None, account_of(cluster_arn))

    ecs = clients.ecs(region)
    found: dict[str, dict] = {}
    failures: dict[str, str] = {}
    unanswered: dict[str, list[str]] = {}  # cluster ARN -> tasks neither found nor failed
    for cluster_arn, arns in sorted(by_cluster.items()):
        for batch in _chunks(arns, DESCRIBE_TASKS_BATCH):
            try:
                response = ecs.describe_tasks(cluster=cluster_arn, tasks=batch)
            except AWS_ERRORS as exc:
                gone = error_code(exc) == "ClusterNotFoundException" and own(cluster_arn)
                message = "MISSING" if gone else failure_message(exc, "DescribeTasks", "ecs")
                failures.update(dict.fromkeys(batch, message))
                continue
            # each answer under the ARN asked for: a task asked for by its short-format ARN
            # (task/ID) or its id may come back under another form of its ARN
            asked = {arn.rsplit("/", 1)[-1]: arn for arn in batch}
            for task in response.get("tasks", []):
                arn = task["taskArn"]
                found[arn if arn in batch else asked.get(arn.rsplit("/", 1)[-1], arn)] = jsonable(task)
            for failure in response.get("failures", []):
                arn = failure.get("arn", "")
                key = arn if arn in batch else asked.get(arn.rsplit("/", 1)[-1], arn)
                failures[key] = failure.get("reason") or "failure"
            lost = [arn for arn in batch if arn not in found and arn not in failures]
            if lost and own(cluster_arn):
                unanswered.setdefault(cluster_arn, []).extend(lost)
    for cluster_arn in _deleted_clusters(ecs, list(unanswered)):
        failures.update(dict.fromkeys(unanswered[cluster_arn], "MISSING"))
    return found, failures


def cluster_deleted(clients: Clients, region: str, cluster_arn: str) -> bool:
    """DescribeClusters reports the cluster ``INACTIVE`` (deleted) or does not know it
    (``MISSING``); False when that cannot be told (the call failed)."""
    return bool(_deleted_clusters(clients.ecs(region), [cluster_arn]))


def _deleted_clusters(ecs: Any, cluster_arns: list[str]) -> list[str]:
    """Those of the clusters DescribeClusters reports ``INACTIVE`` (deleted) or does not
    know (failure ``MISSING``); none when the call fails (nothing is concluded)."""
    deleted: list[str] = []
    for batch in _chunks(cluster_arns, DESCRIBE_CLUSTERS_BATCH):
        try:
            response = ecs.describe_clusters(clusters=batch)
        except AWS_ERRORS:
            continue
        by_arn = {
            cluster.get("clusterArn"): cluster.get("status") for cluster in response.get("clusters", [])
        }
        missing = {f.get("arn") for f in response.get("failures", []) if f.get("reason") == "MISSING"}
        deleted.extend(arn for arn in batch if by_arn.get(arn) == "INACTIVE" or arn in missing)
    return deleted
