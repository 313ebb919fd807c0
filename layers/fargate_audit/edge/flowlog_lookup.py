"""The flow logs that deliver to a CloudWatch Logs group (the ``flow_logs`` function's
format lookup; design.md section 7).

``group_flow_logs(ec2, group)``: ``ec2:DescribeFlowLogs`` with the filter
``log-group-name`` = ``group``, every page; each flow log as ``{"FlowLogId", "LogFormat"}``
(``LogFormat`` only when AWS gives one). A failed call (AccessDenied, throttling after
botocore's retries, ...) raises :class:`FlowLogLookupError` naming the action and the
group: the caller must not go on with a guessed format.

:class:`FlowLogCache` keeps each group's answer in a warm container: a settled answer
(one format) for ``SETTLED_TTL_SECONDS`` (a flow log's LogFormat cannot change; only a flow
log added or deleted could change the answer), an unsettled one (no flow log, or several
formats) for ``UNSETTLED_TTL_SECONDS``, so that a flow log created or deleted since is seen
within minutes. Which answer is settled is the caller's call (``app.flowlogs``).

Nothing here runs at import time; the client comes from the caller.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from fargate_audit.core.errors import FargateAuditError
from fargate_audit.edge.aws import AWS_ERRORS, describe_error

ACTION = "ec2:DescribeFlowLogs"
PAGE_SIZE = 1000  # DescribeFlowLogs MaxResults (1-1000)
SETTLED_TTL_SECONDS = 3600.0
UNSETTLED_TTL_SECONDS = 300.0


class FlowLogLookupError(FargateAuditError):
    """``ec2:DescribeFlowLogs`` failed for a log group (the text names the action, the
    group and AWS's error). Not a malformed event: the batch is retried, then kept by the
    function's OnFailure destination."""


def group_flow_logs(ec2, group: str) -> list[dict[str, str]]:
    """The flow logs delivering to CloudWatch Logs group ``group``, by id (each page of
    DescribeFlowLogs, filter ``log-group-name``). FlowLogLookupError when a call fails."""
    found: dict[str, dict[str, str]] = {}
    try:
        pages = ec2.get_paginator("describe_flow_logs").paginate(
            Filters=[{"Name": "log-group-name", "Values": [group]}],
            PaginationConfig={"PageSize": PAGE_SIZE},
        )
        for page in pages:
            for flow_log in page.get("FlowLogs") or []:
                entry = {"FlowLogId": str(flow_log.get("FlowLogId") or "")}
                if flow_log.get("LogFormat"):
                    entry["LogFormat"] = str(flow_log["LogFormat"])
                found[entry["FlowLogId"]] = entry
    except AWS_ERRORS as exc:
        call = f"{ACTION} (log-group-name {group})"
        raise FlowLogLookupError(
            f"{describe_error(exc, call)}; no format is guessed: the batch is not read"
        ) from exc
    return [found[key] for key in sorted(found)]


class FlowLogCache:
    """Each log group's flow logs (``group_flow_logs``) until their time is up."""

    MAX_ENTRIES = 1000  # the oldest entry goes first

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._entries: dict[str, tuple[float, list[dict[str, str]]]] = {}

    def get(self, group: str) -> list[dict[str, str]] | None:
        """The group's flow logs, or None when not cached or expired."""
        entry = self._entries.get(group)
        if entry is None:
            return None
        expires, flow_logs = entry
        if self._clock() >= expires:
            del self._entries[group]
            return None
        return flow_logs

    def forget(self, group: str) -> None:
        """Drop the group's entry (its records no longer fit the format it gave)."""
        self._entries.pop(group, None)

    def put(self, group: str, flow_logs: list[dict[str, str]], ttl_seconds: float) -> None:
        self._entries.pop(group, None)
        self._entries[group] = (self._clock() + float(ttl_seconds), flow_logs)
        while len(self._entries) > self.MAX_ENTRIES:
            self._entries.pop(next(iter(self._entries)))


def cached_group_flow_logs(
    cache: FlowLogCache, ec2_for: Callable[[], Any], group: str, settled: Callable[[list], bool]
) -> list[dict[str, str]]:
    """The group's flow logs from the cache, else read (``ec2_for()`` gives the client) and
    kept for SETTLED_TTL_SECONDS when ``settled(flow logs)``, else UNSETTLED_TTL_SECONDS.
    A failed read (FlowLogLookupError) is not cached."""
    flow_logs = cache.get(group)
    if flow_logs is None:
        flow_logs = group_flow_logs(ec2_for(), group)
        cache.put(group, flow_logs, SETTLED_TTL_SECONDS if settled(flow_logs) else UNSETTLED_TTL_SECONDS)
    return flow_logs


VPC_ACTION = "ec2:DescribeVpcs"


def vpc_cidrs(ec2, vpc_ids: list[str]) -> dict[str, list[str]]:
    """The IPv4 and IPv6 CIDRs of each VPC (``ec2:DescribeVpcs`` with the filter
    ``vpc-id``, every page: a VPC deleted since is simply absent, with no CIDR). Only
    associated blocks count. FlowLogLookupError when a call fails."""
    found: dict[str, list[str]] = {vpc: [] for vpc in vpc_ids}
    if not vpc_ids:
        return found
    try:
        pages = ec2.get_paginator("describe_vpcs").paginate(
            Filters=[{"Name": "vpc-id", "Values": sorted(vpc_ids)}]
        )
        for page in pages:
            for vpc in page.get("Vpcs") or []:
                blocks = [
                    *(
                        b.get("CidrBlock")
                        for b in vpc.get("CidrBlockAssociationSet") or []
                        if (b.get("CidrBlockState") or {}).get("State", "associated") == "associated"
                    ),
                    *(
                        b.get("Ipv6CidrBlock")
                        for b in vpc.get("Ipv6CidrBlockAssociationSet") or []
                        if (b.get("Ipv6CidrBlockState") or {}).get("State", "associated") == "associated"
                    ),
                ]
                if not blocks and vpc.get("CidrBlock"):
                    blocks = [vpc["CidrBlock"]]
                found[str(vpc.get("VpcId"))] = sorted({str(b) for b in blocks if b})
    except AWS_ERRORS as exc:
        call = f"{VPC_ACTION} ({', '.join(sorted(vpc_ids))})"
        raise FlowLogLookupError(
            f"{describe_error(exc, call)}; the VPCs' own addresses are unknown: the batch is not read"
        ) from exc
    return found


def cached_vpc_cidrs(
    cache: FlowLogCache, ec2_for: Callable[[], Any], vpc_ids: list[str]
) -> dict[str, list[str]]:
    """Each VPC's CIDRs from the cache, the others read in one paged DescribeVpcs and kept
    for UNSETTLED_TTL_SECONDS (a VPC can gain a secondary CIDR)."""
    out: dict[str, list[str]] = {}
    missing = []
    for vpc in sorted(set(vpc_ids)):
        cached = cache.get(f"vpc:{vpc}")
        if cached is None:
            missing.append(vpc)
        else:
            out[vpc] = list(cached)
    if missing:
        for vpc, cidrs in vpc_cidrs(ec2_for(), missing).items():
            cache.put(f"vpc:{vpc}", cidrs, UNSETTLED_TTL_SECONDS)
            out[vpc] = cidrs
    return out
