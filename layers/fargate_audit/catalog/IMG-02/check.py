"""The check of IMG-02; the rule's data (title, severity, parameters, fixtures) is rule.yaml beside it."""

from __future__ import annotations

from collections.abc import Mapping

from fargate_audit.core.checks import CheckResult, check, verdict


@check(inputs=("containers",))
def image_not_pinned(posture: Mapping, params: Mapping) -> CheckResult:
    """IMG-02: some container image has no ``@sha256:`` digest."""
    images = [
        {"container": c.get("name"), "image": c.get("image")}
        for c in posture.get("containers") or []
        if "@sha256:" not in (c.get("image") or "")
    ]
    return verdict(bool(images)), {"images": images}
