"""The table's shared keys: what the stores and the findings both name (a workload, the
beginning of a workload's finding Ids). Pure; stores and findings import it, it imports
nothing of theirs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def workload_key_for(account: str, region: str, cluster_name: str, group: str) -> str:
    parts = {"account": account, "region": region, "cluster_name": cluster_name, "group": group}
    missing = [name for name, value in parts.items() if not value]
    if missing:
        raise ValueError(f"workload key: {', '.join(missing)} missing")
    return f"WL#{account}#{region}#{cluster_name}#{group}"


def workload_key(posture: Mapping[str, Any]) -> str:
    """``WL#<account>#<region>#<cluster_name>#<group>`` of a posture."""
    return workload_key_for(
        posture.get("account_id"), posture.get("region"), posture.get("cluster_name"), posture.get("group")
    )


def workload_key_from_cluster_arn(cluster_arn: str, group: str) -> str:
    """The workload key from an ECS event's ``clusterArn`` and ``group`` (for a STOPPED
    event of a task never audited: no posture to read it from)."""
    parts = (cluster_arn or "").split(":", 5)
    if len(parts) < 6 or parts[0] != "arn" or not parts[5].startswith("cluster/"):
        raise ValueError(f"not an ECS cluster ARN: {cluster_arn!r}")
    return workload_key_for(parts[4], parts[3], parts[5].split("/", 1)[1], group)


def _workload_parts(key: str) -> list[str]:
    parts = key.split("#")
    if len(parts) != 5 or parts[0] != "WL" or not all(parts[1:]):
        raise ValueError(f"not a workload key: {key!r}")
    return parts[1:]


def finding_id_prefix(key: str) -> str:
    """The common beginning of the finding Ids of one workload (asff.finding_id)."""
    account, region, cluster_name, group = _workload_parts(key)
    return f"fargate-audit/{account}/{region}/{cluster_name}/{group}/"


def workload_key_of_finding(finding_id: str) -> str:
    """The workload key of a finding Id ``fargate-audit/acct/region/cluster/group/rule``."""
    parts = finding_id.split("/")
    if len(parts) != 6 or parts[0] != "fargate-audit":
        raise ValueError(f"not a fargate-audit finding Id: {finding_id!r}")
    return workload_key_for(*parts[1:5])
