"""What every rule's check shares: statuses, :class:`FactError`, the registration
decorators and the helpers several checks (or other modules) use.

A rule's check lives beside its data: ``catalog/<ID>/check.py`` next to
``catalog/<ID>/rule.yaml`` (shared/spec/rules.md holds the semantics). The catalog loader
(:mod:`fargate_audit.core.rules`) imports each folder's ``check.py`` and takes what it
registers with the decorators below; a rule's check is the one its folder registers,
unless its rule file names another registered one (``check: <name>``).

Each check reads a Posture (docs/design.md section 2) and the rule's own parameters,
already resolved for the task (``{account}``/``{region}`` substituted, defaults applied):

    check(posture, params) -> (status, evidence)

``status`` is ``PASSED``, ``FAILED`` or ``NOT_APPLICABLE``; ``evidence`` a JSON-serialisable
dict. The engine has already turned every fact the rule ``requires`` that is in
``posture["errors"]`` into ``ERROR``, so a check only sees collected facts; when a fact
it reads is present but unusable it raises :class:`FactError` (the engine reports
``ERROR``). Checks are pure: no I/O, no clock, and they never mutate the posture. Each
gathers every violation before deciding.

Applicability functions (``applicability(posture, params) -> bool``) say whether a rule
concerns the task at all; ``False`` gives ``NOT_APPLICABLE``.

A rule whose ``evaluation`` is ``workload-discovery`` (EGR-01) reads a Discovery instead of
a Posture: ``{"account_id", "region", "workload", "destinations": [{"name", "query_type",
...}]}`` (docs/design.md section 6), built by the dns_logs function from DNS query logs.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

PASSED = "PASSED"
FAILED = "FAILED"
NOT_APPLICABLE = "NOT_APPLICABLE"

FAMILIES = ("ipv4", "ipv6")
UNUSABLE_ENDPOINT_STATES = frozenset({"deleted", "deleting", "failed", "rejected", "expired"})

Evidence = dict[str, Any]
CheckResult = tuple[str, Evidence]
CheckFunction = Callable[[Mapping, Mapping], CheckResult]
ApplicabilityFunction = Callable[[Mapping, Mapping], bool]


class FactError(Exception):
    """A fact the check needs is present but unusable (e.g. an unparsable platform
    version). The engine reports the rule as ``ERROR`` with ``evidence.error`` = str(exc),
    which reads ``"<fact>: <message>"``."""

    def __init__(self, fact: str, message: str) -> None:
        super().__init__(f"{fact}: {message}")
        self.fact = fact
        self.message = message


# --------------------------------------------------------------------------- registration

CHECK, APPLICABILITY = "check", "applicability"


@dataclass(frozen=True)
class Check:
    """A function a rule folder's ``check.py`` registers: with ``@check`` (the rule's check)
    or ``@applicability``. ``name`` is the function's name, the one a rule file may name
    (``check: <name>``, ``applicability.check``). Calling it calls the function.

    ``inputs``: the posture parts (dotted paths) the check's verdict and evidence depend on
    besides the rule's parameters, when it reads nothing else. A scan's postures share such
    parts between the tasks of a subnet, a set of security groups or a task definition
    (posture.build_posture's memo), so the engine evaluates such a check once per distinct
    part instead of once per task. tests/unit/test_engine.py runs each of them on every
    fixture reduced to exactly these parts: a check that reads anything else fails it.

    ``tolerates``: the facts whose error the check reads itself (``posture["errors"]``),
    giving the verdict the collected facts decide, else raising :class:`FactError`. A rule
    file may list in its ``tolerates`` only facts its check declares here: any other check
    would judge a fact it never collected as if it were there."""

    name: str
    function: Callable[[Mapping, Mapping], Any]
    kind: str = CHECK
    inputs: tuple[str, ...] | None = None
    tolerates: tuple[str, ...] = ()

    def __call__(self, subject: Mapping, params: Mapping) -> Any:
        return self.function(subject, params)


def check(
    function: CheckFunction | None = None,
    *,
    inputs: Iterable[str] | None = None,
    tolerates: Iterable[str] = (),
) -> Any:
    """``@check``, ``@check(inputs=("network.nacl",))`` or ``@check(tolerates=("containers",))``
    over the rule's check function."""

    def register(fn: CheckFunction) -> Check:
        return Check(fn.__name__, fn, CHECK, None if inputs is None else tuple(inputs), tuple(tolerates))

    return register if function is None else register(function)


def applicability(function: ApplicabilityFunction) -> Check:
    """``@applicability`` over a function a rule file names in ``applicability.check``."""
    return Check(function.__name__, function, APPLICABILITY)


# --------------------------------------------------------------------------- posture helpers


def verdict(violated: bool) -> str:
    return FAILED if violated else PASSED


def network_of(posture: Mapping) -> Mapping:
    return posture.get("network") or {}


def is_public(posture: Mapping, family: str) -> bool:
    return bool((network_of(posture).get("public_address") or {}).get(family))


def exposures_of(posture: Mapping) -> list[Mapping]:
    """The task's exposures through load balancers (rules.md "Ingress through load balancers")."""
    return network_of(posture).get("exposures") or []


def exposure_evidence(exposures: list[Mapping]) -> list[dict]:
    """Copies of exposures for a result's evidence (evidence never aliases the posture)."""
    return [{**e, "families": list(e.get("families") or [])} for e in exposures]


def egress_of(posture: Mapping, family: str) -> dict:
    """The family's ``path`` and ``targets``, and its ``error`` when the path after a NAT
    gateway could not be followed (the path is then None)."""
    entry = (network_of(posture).get("egress") or {}).get(family) or {}
    found = {"path": entry.get("path"), "targets": list(entry.get("targets") or [])}
    if entry.get("error"):
        found["error"] = entry["error"]
    return found


def family_ports(mapping: Mapping | None, family: str) -> list[dict]:
    return list((mapping or {}).get(family) or [])


def usable(endpoint: Mapping) -> bool:
    return str(endpoint.get("state") or "").lower() not in UNUSABLE_ENDPOINT_STATES


def s3_gateway_endpoints(posture: Mapping) -> list[Mapping]:
    """Usable S3 Gateway endpoints whose RouteTableIds list the task subnet's route table
    (NET-09 condition a, which NET-10 reads too)."""
    network = network_of(posture)
    route_table = network.get("route_table_id")
    found = [
        endpoint
        for endpoint in network.get("vpc_endpoints") or []
        if usable(endpoint)
        and endpoint.get("service") == "s3"
        and str(endpoint.get("type") or "").lower() == "gateway"
        and route_table is not None
        and route_table in (endpoint.get("route_table_ids") or [])
    ]
    return sorted(found, key=lambda e: str(e.get("id")))


def private_ecr_images(posture: Mapping) -> list[dict]:
    return [
        {"container": c.get("name"), "image": c.get("image")}
        for c in posture.get("containers") or []
        if c.get("private_ecr")
    ]


# --------------------------------------------------------------------------- registries and domains
# IMG-01 and EGR-01 match registries; EGR-01, the dns_logs function and `discovered` match domains.


@lru_cache(maxsize=256)
def _registry_regex(pattern: str) -> re.Pattern[str]:
    """``*`` = one or more characters other than ``.``; everything else literal;
    case-insensitive (both sides lower-cased)."""
    return re.compile("[^.]+".join(re.escape(part) for part in pattern.lower().split("*")))


def registry_approved(registry: str, patterns: Iterable[str]) -> bool:
    """True when the whole registry (host and port) matches one of ``patterns``."""
    text = (registry or "").lower()
    return any(_registry_regex(pattern).fullmatch(text) for pattern in patterns)


def normalize_domain(name: str | None) -> str:
    """A DNS name as compared: stripped, lower-cased, one trailing dot removed."""
    text = (name or "").strip().lower()
    return text[:-1] if text.endswith(".") else text


def domain_matches(name: str, pattern: str) -> bool:
    """rules.md EGR-01: ``*.d`` matches every name ending in ``.d`` (not ``d`` itself), a
    plain name only itself; case-insensitive, trailing dot ignored on both sides."""
    name, pattern = normalize_domain(name), normalize_domain(pattern)
    if pattern.startswith("*."):
        suffix = pattern[1:]
        return len(name) > len(suffix) and name.endswith(suffix)
    return bool(name) and name == pattern


def _registry_host(pattern: str) -> str:
    """The host of an ``approved_registries`` pattern (``host[:port]``)."""
    host, sep, port = pattern.rpartition(":")
    return host if sep and (port.isdigit() or port == "*") else pattern


def domain_approved(name: str, domains: Iterable[str], registries: Iterable[str] = ()) -> bool:
    """EGR-01: ``name`` matches an ``approved_domains`` pattern or the host of an
    ``approved_registries`` pattern (with IMG-01's own ``*`` = one label semantics)."""
    if any(domain_matches(name, pattern) for pattern in domains):
        return True
    text = normalize_domain(name)
    return any(_registry_regex(_registry_host(pattern)).fullmatch(text) for pattern in registries)
