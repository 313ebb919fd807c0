"""The table's shared keys: what the stores and the findings both name (a workload, the
beginning of a workload's finding Ids). Pure; stores and findings import it, it imports
nothing of theirs."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

# A task group is ``service:NAME`` or ``family:NAME``, or any custom name of up to 255
# characters given to RunTask (ECS guide, "Group related Amazon ECS tasks"): "/" and "#"
# would split a finding Id or a key, so they are written %2F and %23 there (and "%" as %25).
# Service and family names (letters, digits, "-", "_") are written as they are.
_GROUP_ESCAPES = str.maketrans({"%": "%25", "/": "%2F", "#": "%23"})


# A finding Id is at most 512 characters (ASFF). With a cluster name of ECS's 255 at most,
# the account, the longest region and a rule id, 200 are left for the group: a longer one
# (escaped) is cut and ends in "~" and 16 hex digits of its hash, unique and stable.
MAX_GROUP_COMPONENT = 200
_HASHED = re.compile(r"~[0-9a-f]{16}$")


def group_component(group: str) -> str:
    """The task group as a component of a workload key or finding Id."""
    escaped = group.translate(_GROUP_ESCAPES)
    if len(escaped) <= MAX_GROUP_COMPONENT:
        return escaped
    digest = hashlib.sha256(group.encode("utf-8")).hexdigest()[:16]
    return escaped[: MAX_GROUP_COMPONENT - 17] + "~" + digest


def group_from_component(component: str) -> str:
    """The group a component names (a cut one, see group_component, stays as it is)."""
    if len(component) == MAX_GROUP_COMPONENT and _HASHED.search(component):
        return component
    return unquote(component) if "%" in component else component


def workload_key_for(account: str, region: str, cluster_name: str, group: str) -> str:
    parts = {"account": account, "region": region, "cluster_name": cluster_name, "group": group}
    missing = [name for name, value in parts.items() if not value]
    if missing:
        raise ValueError(f"workload key: {', '.join(missing)} missing")
    return f"WL#{account}#{region}#{cluster_name}#{group_component(group)}"


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


def _components(key: str) -> list[str]:
    """(account, region, cluster name, group component) of a ``WL#...`` key, as written."""
    parts = key.split("#")
    if len(parts) != 5 or parts[0] != "WL" or not all(parts[1:]):
        raise ValueError(f"not a workload key: {key!r}")
    return parts[1:]


def workload_parts(key: str) -> tuple[str, str, str, str]:
    """(account, region, cluster name, group) of a ``WL#...`` key (the group as the task has it)."""
    account, region, cluster_name, component = _components(key)
    return account, region, cluster_name, group_from_component(component)


def finding_id_prefix(key: str) -> str:
    """The common beginning of the finding Ids of one workload (asff.finding_id), and of
    no other workload's."""
    account, region, cluster_name, component = _components(key)
    return f"fargate-audit/{account}/{region}/{cluster_name}/{component}/"


def finding_id_prefix_for(account: str, region: str, cluster_name: str, group: str) -> str:
    return f"fargate-audit/{account}/{region}/{cluster_name}/{group_component(group)}/"


def workload_key_of_finding(finding_id: str) -> str:
    """The workload key of a finding Id ``fargate-audit/acct/region/cluster/group/rule``
    (its group component is the key's, as written)."""
    parts = finding_id.split("/")
    if len(parts) != 6 or parts[0] != "fargate-audit" or not all(parts[1:5]):
        raise ValueError(f"not a fargate-audit finding Id: {finding_id!r}")
    return "WL#" + "#".join(parts[1:5])
