"""The check of NET-10; the rule's data (title, severity, parameters, fixtures) is rule.yaml beside it."""

from __future__ import annotations

from collections.abc import Mapping

from fargate_audit.core.checks import (
    CheckResult,
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


@check
def ecr_pulls_over_internet(posture: Mapping, params: Mapping) -> CheckResult:
    """NET-10: private ECR images, and the VPC lacks an ecr.dkr or ecr.api Interface
    endpoint of the task's region, or has no S3 gateway endpoint on the subnet's route
    table (NET-09 condition a)."""
    missing = [svc for svc in ("ecr.dkr", "ecr.api") if not _has_interface_endpoint(posture, svc)]
    if not s3_gateway_endpoints(posture):
        missing.append("s3")
    images = private_ecr_images(posture)
    return verdict(bool(images and missing)), {"missing_endpoints": missing, "images": images}
