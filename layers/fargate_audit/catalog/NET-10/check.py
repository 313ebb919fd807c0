"""The check of NET-10; the rule's data (title, severity, parameters, fixtures) is rule.yaml beside it."""

from __future__ import annotations

from collections.abc import Mapping

from fargate_audit.core.checks import (
    CheckResult,
    FactError,
    applicability,
    check,
    network_of,
    private_ecr_images,
    s3_gateway_endpoints,
    usable,
    verdict,
)


def _has_interface_endpoint(posture: Mapping, service: str) -> bool:
    region = posture.get("region")
    return any(
        usable(endpoint)
        and endpoint.get("service") == service
        and str(endpoint.get("type") or "").lower() == "interface"
        and str(endpoint.get("service_name") or "").endswith(f".{region}.{service}")
        for endpoint in network_of(posture).get("vpc_endpoints") or []
    )


@applicability
def uses_private_ecr_image(posture: Mapping, params: Mapping) -> bool:
    """NET-10 applicability: some container image is in a private ECR registry."""
    return bool(private_ecr_images(posture))


@check(tolerates=("route_table",))
def ecr_pulls_over_internet(posture: Mapping, params: Mapping) -> CheckResult:
    """NET-10: private ECR images, and the VPC lacks an ecr.dkr or ecr.api Interface
    endpoint of the task's region, or has no S3 gateway endpoint on the subnet's route
    table (NET-09 condition a). When the route table could not be read, a missing
    interface endpoint still fails it (``missing_endpoints`` then names only those, and
    ``unknown_endpoints`` names s3); without one missing, the verdict is unknown (ERROR)."""
    missing = [svc for svc in ("ecr.dkr", "ecr.api") if not _has_interface_endpoint(posture, svc)]
    images = private_ecr_images(posture)
    route_table_error = (posture.get("errors") or {}).get("route_table")
    if route_table_error:
        if not missing:
            raise FactError("route_table", route_table_error)
        return verdict(bool(images)), {
            "missing_endpoints": missing,
            "unknown_endpoints": ["s3"],
            "images": images,
        }
    if not s3_gateway_endpoints(posture):
        missing.append("s3")
    return verdict(bool(images and missing)), {"missing_endpoints": missing, "images": images}
