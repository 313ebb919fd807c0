"""The check of CFG-01; the rule's data (title, severity, parameters, fixtures) is rule.yaml beside it."""

from __future__ import annotations

import re
from collections.abc import Mapping

from fargate_audit.core.checks import CheckResult, FactError, check, verdict

_VERSION = re.compile(r"[0-9]+(?:\.[0-9]+)*")


def _version_tuple(text: str) -> tuple[int, ...]:
    numbers = [int(part) for part in text.split(".")]
    while len(numbers) > 1 and numbers[-1] == 0:  # 1.4 == 1.4.0
        numbers.pop()
    return tuple(numbers)


@check
def platform_version_outdated(posture: Mapping, params: Mapping) -> CheckResult:
    """CFG-01: ``platformVersion`` below the minimum of the task's platform family
    (dotted numbers); ``LATEST`` passes; an absent or unparsable version is an ERROR.

    An unknown family (``platform_family`` None: the task reports none and its task
    definition could not be read) is judged under both minimums: when they agree that
    verdict stands (evidence ``minimums`` names both); when they differ the result is an
    ERROR naming the call that failed (``posture["errors"]["platform_family"]``)."""
    version = posture.get("platform_version")
    family = posture.get("platform_family")
    if version is None:
        raise FactError("platform_version", "not reported by AWS")
    if version != "LATEST" and (not isinstance(version, str) or not _VERSION.fullmatch(version)):
        raise FactError("platform_version", f"{version!r} is not a dotted version number")

    def below(minimum: str) -> bool:
        return version != "LATEST" and _version_tuple(version) < _version_tuple(minimum)

    if family is None:
        minimums = {
            "LINUX": params["min_platform_version"],
            "WINDOWS": params["min_platform_version_windows"],
        }
        verdicts = {name: below(minimum) for name, minimum in minimums.items()}
        if verdicts["LINUX"] != verdicts["WINDOWS"]:
            failing = "LINUX" if verdicts["LINUX"] else "WINDOWS"
            passing = "WINDOWS" if failing == "LINUX" else "LINUX"
            problem = (posture.get("errors") or {}).get("platform_family") or "not known"
            raise FactError(
                "platform_family",
                f"{problem} (unknown family: platform version {version} is below the {failing} "
                f"minimum {minimums[failing]} but not the {passing} minimum {minimums[passing]})",
            )
        return verdict(verdicts["LINUX"]), {
            "platform_version": version,
            "platform_family": None,
            "minimums": dict(minimums),
        }
    windows = str(family).upper().startswith("WINDOWS")
    minimum = params["min_platform_version_windows" if windows else "min_platform_version"]
    evidence = {"platform_version": version, "platform_family": family, "minimum": minimum}
    return verdict(below(minimum)), evidence
