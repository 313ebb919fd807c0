"""The check of IMG-01; the rule's data (title, severity, parameters, fixtures) is rule.yaml beside it."""

from __future__ import annotations

from collections.abc import Mapping

from fargate_audit.core.checks import CheckResult, check, registry_approved, verdict


@check(inputs=("containers",))
def unapproved_registry(posture: Mapping, params: Mapping) -> CheckResult:
    """IMG-01: some container image's registry matches no ``approved_registries`` pattern."""
    patterns = list(params["approved_registries"])
    images = [
        {"container": c.get("name"), "image": c.get("image"), "registry": c.get("registry")}
        for c in posture.get("containers") or []
        if not registry_approved(c.get("registry") or "", patterns)
    ]
    return verdict(bool(images)), {"images": images}
