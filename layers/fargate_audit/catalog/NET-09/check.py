"""The check of NET-09; the rule's data (title, severity, parameters, fixtures) is rule.yaml beside it."""

from __future__ import annotations

from collections.abc import Mapping
from fnmatch import fnmatchcase
from typing import Any

from fargate_audit.core.checks import CheckResult, FactError, check, network_of, s3_gateway_endpoints, verdict


def _as_list(value: Any) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _has_wildcard(text: str) -> bool:
    return "*" in text or "?" in text


def _s3_resource_unapproved(resource: Any, approved: list[str]) -> bool:
    """NET-09 (c)/(d) for one ``Resource`` of an ``Allow`` statement.

    ``*`` is unapproved. Other values count only when they are S3 ARNs (service ``s3``, or
    a wildcard that matches it: a policy ARN may use wildcards in any segment). A bucket
    ARN (empty region and account segments) has a bucket part: the resource segment
    before the first ``/``; a ``*`` or ``?`` in it is unapproved (c), and so is a bucket
    that matches no ``approved_s3_buckets`` glob when that list is non-empty (d). An S3
    ARN that cannot be a bucket ARN (an access point, ``arn:aws:s3:region:account:...``)
    names no bucket: unapproved when its region, account or name holds a wildcard, or
    when buckets are approved (it matches none of them).
    """
    if not isinstance(resource, str):
        return False
    if resource == "*":
        return True
    parts = resource.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn":
        return False
    _, partition, service, region, account, rest = parts
    if not fnmatchcase("s3", service) or not partition:
        return False
    if region or account:
        # May be other than a bucket ARN (access point, Object Lambda, batch job, ...): as
        # such it names no bucket. A wildcard region or account matches both forms, each
        # judged (``arn:aws:s3:*:*:accesspoint/*`` is every access point, not a bucket).
        name = "/".join(rest.split("/", 2)[:2])
        if _has_wildcard(region + account + name) or approved:
            return True
    if not (fnmatchcase("", region) and fnmatchcase("", account)):
        return False
    bucket = rest.split("/", 1)[0]
    if _has_wildcard(bucket):
        return True
    return bool(approved) and not any(fnmatchcase(bucket, pattern) for pattern in approved)


def _unapproved_resources(policy: Mapping, approved: list[str]) -> list[str]:
    found: list[str] = []
    for statement in _as_list(policy.get("Statement")):
        if not isinstance(statement, Mapping) or statement.get("Effect") != "Allow":
            continue
        if "NotResource" in statement:
            found.extend(f"NotResource: {value}" for value in _as_list(statement["NotResource"]))
            continue
        found.extend(r for r in _as_list(statement.get("Resource")) if _s3_resource_unapproved(r, approved))
    return list(dict.fromkeys(found))


def _s3_confinement(posture: Mapping, approved: list[str]) -> dict:
    """NET-09's conditions: the endpoint(s) found, unapproved resources and reasons."""
    route_table = network_of(posture).get("route_table_id")
    endpoints = s3_gateway_endpoints(posture)
    if not endpoints:
        return {
            "endpoint_id": None,
            "route_table_id": route_table,
            "unapproved_resources": [],
            "reasons": [f"no S3 gateway endpoint is associated with route table {route_table}"],
        }
    resources: list[str] = []
    reasons: list[str] = []
    for endpoint in endpoints:
        if endpoint.get("policy_error"):
            raise FactError(
                "vpc_endpoints", f"{endpoint.get('id')}: policy unreadable: {endpoint['policy_error']}"
            )
        policy = endpoint.get("policy")
        if policy is None:
            reasons.append(f"{endpoint.get('id')} has no policy (full access)")
            continue
        if not isinstance(policy, Mapping):
            raise FactError("vpc_endpoints", f"{endpoint.get('id')}: policy is not a JSON object")
        unapproved = _unapproved_resources(policy, approved)
        if unapproved:
            resources.extend(unapproved)
            reasons.append(f"{endpoint.get('id')} policy allows unapproved resources")
    return {
        "endpoint_id": endpoints[0].get("id"),
        "route_table_id": route_table,
        "unapproved_resources": list(dict.fromkeys(resources)),
        "reasons": reasons,
    }


@check(inputs=("network.route_table_id", "network.vpc_endpoints"))
def s3_not_confined(posture: Mapping, params: Mapping) -> CheckResult:
    """NET-09 (a) no S3 gateway endpoint on the subnet's route table, (b) no policy,
    (c) an Allow with NotResource, ``*`` or a wildcard bucket, (d) a bucket outside a
    non-empty ``approved_s3_buckets``. Deny statements and principals are ignored."""
    evidence = _s3_confinement(posture, list(params["approved_s3_buckets"]))
    return verdict(bool(evidence["reasons"])), evidence
