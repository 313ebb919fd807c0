"""Params files (interface.md "Params file"): parameter overrides plus exemptions.

A params file is YAML or JSON (``.json`` is JSON, ``.yaml``/``.yml`` YAML, anything else
decided by its content) validated against a JSON Schema built from
``rules/parameters.yaml`` plus ``exemptions``. Every problem is a one-line
:class:`~fargate_audit.core.errors.ConfigError` naming the file and the key path, e.g.
``params.yaml: exemptions[0].expires: 'soon' is not a date (YYYY-MM-DD)``.

Pure: no clock (``today`` is an argument), no environment.
"""

from __future__ import annotations

import copy
import datetime as dt
import ipaddress
import json
import os
import re
from collections.abc import Iterable, Mapping
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from fargate_audit.core.egress import MAX_ANSWER_LOOKBACK, MIN_ANSWER_LOOKBACK, duration_seconds
from fargate_audit.core.errors import ConfigError
from fargate_audit.core.rules import (
    MAX_DOCUMENT_DEPTH,
    Catalog,
    document_size_problem,
    problem,
    read_yaml,
    schema_problems,
)

EXEMPTIONS = "exemptions"
ALL_RULES = "*"
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_PLACEHOLDERS = ("{account}", "{region}")

EXEMPTION_SCHEMA: dict = {
    "type": "object",
    "additionalProperties": False,
    "required": ["rule", "workload", "reason", "expires"],
    "properties": {
        "rule": {"type": "string", "minLength": 1},
        "workload": {"type": "string", "minLength": 1},
        "reason": {"type": "string"},
        "expires": {"type": "string"},
    },
}


def params_schema(catalog: Catalog) -> dict:
    """The params file's JSON Schema: every catalog parameter plus ``exemptions``."""
    properties = {name: copy.deepcopy(p.schema) for name, p in catalog.parameters.items()}
    properties[EXEMPTIONS] = {"type": "array", "items": EXEMPTION_SCHEMA}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "fargate-audit params file",
        "type": "object",
        "additionalProperties": False,
        "properties": properties,
    }


def _dates_to_text(value: Any) -> Any:
    """A ``date`` given by a program (files keep dates as text) becomes the ISO text a
    file would hold; a ``datetime`` becomes text that fails the date check."""
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _dates_to_text(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_dates_to_text(v) for v in value]
    return value


def _semantic_problems(source: str, data: Mapping, catalog: Catalog) -> list[str]:
    problems: list[str] = []
    pattern = data.get("secret_env_pattern")
    if isinstance(pattern, str):
        try:
            re.compile(pattern)
        except re.error as exc:
            problems.append(problem(source, "secret_env_pattern", f"invalid regular expression: {exc}"))
    for i, iv in enumerate(data.get("allowed_public_ports") or []):
        floats = [key for key in ("from", "to") if isinstance(iv[key], float)]
        for key in floats:  # JSON Schema's "integer" admits 443.0; a port is written 443
            problems.append(
                problem(source, ["allowed_public_ports", i, key], f"{iv[key]!r} is not an integer")
            )
        if not floats and iv["from"] > iv["to"]:
            problems.append(
                problem(source, ["allowed_public_ports", i], f"from {iv['from']} is above to {iv['to']}")
            )
    for i, cidr in enumerate(data.get("approved_egress_cidrs") or []):
        try:
            ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            problems.append(problem(source, ["approved_egress_cidrs", i], f"{cidr!r} is not a CIDR"))
    lookback = data.get("dns_answer_lookback")
    if isinstance(lookback, float):  # JSON Schema's "integer" admits 3600.0; seconds are written 3600
        problems.append(problem(source, "dns_answer_lookback", f"{lookback!r} is not an integer"))
    elif lookback is not None and duration_seconds(lookback) > MAX_ANSWER_LOOKBACK:
        problems.append(
            problem(source, "dns_answer_lookback", f"{lookback!r} is above 7 days (DNS answers are kept 8)")
        )
    elif lookback is not None and duration_seconds(lookback) < MIN_ANSWER_LOOKBACK:
        problems.append(
            problem(
                source,
                "dns_answer_lookback",
                f"{lookback!r} is below 1 hour (DNS answers are kept per hour: a shorter lookback "
                "could miss an answer inside it)",
            )
        )
    known = set(catalog.ids)
    for i, exemption in enumerate(data.get(EXEMPTIONS) or []):
        rule = exemption["rule"]
        if rule != ALL_RULES and rule not in known:
            problems.append(
                problem(
                    source, [EXEMPTIONS, i, "rule"], f"{rule!r} is not a rule id of the catalog (nor '*')"
                )
            )
        if not exemption["reason"].strip():
            problems.append(problem(source, [EXEMPTIONS, i, "reason"], "must say why (empty)"))
        expires = exemption["expires"]
        if not _DATE.fullmatch(expires) or _parse_date(expires) is None:
            problems.append(
                problem(source, [EXEMPTIONS, i, "expires"], f"{expires!r} is not a date (YYYY-MM-DD)")
            )
    return problems


def _parse_date(text: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        return None


def validate_params(data: Any, catalog: Catalog, source: str = "params") -> dict:
    """A validated copy of a params document (dates as ``YYYY-MM-DD`` text).
    ``None`` means no overrides. ConfigError (one line, naming ``source`` and the key
    path) on the first problem."""
    from jsonschema import Draft202012Validator

    too_large = document_size_problem(data)
    if too_large:
        raise ConfigError(problem(source, "", too_large))
    data = {} if data is None else _dates_to_text(data)
    problems = schema_problems(source, Draft202012Validator(params_schema(catalog)), data)
    if not problems:
        problems = _semantic_problems(source, data, catalog)
    if problems:
        raise ConfigError(problems[0])
    return copy.deepcopy(data)


class _DuplicateKey(ValueError):
    pass


def _object_without_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict:
    """A JSON object refusing a key written twice (json keeps the last silently)."""
    found: dict = {}
    for key, value in pairs:
        if key in found:
            raise _DuplicateKey(f"duplicate key {key!r}")
        found[key] = value
    return found


def load_params(path: str | os.PathLike, catalog: Catalog) -> dict:
    """Read and validate a params file; returns its overrides and exemptions."""
    path = Path(path)
    source = str(path)
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml"):
        data, error = read_yaml(path, source)
        if error:
            raise ConfigError(error)
    else:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(problem(source, "", f"cannot read: {exc}")) from None
        if suffix == ".json" or text.lstrip().startswith(("{", "[")):
            try:
                data = json.loads(text, object_pairs_hook=_object_without_duplicate_keys)
            except json.JSONDecodeError as exc:
                raise ConfigError(
                    problem(source, "", f"invalid JSON: line {exc.lineno} column {exc.colno}: {exc.msg}")
                ) from None
            except _DuplicateKey as exc:
                raise ConfigError(problem(source, "", f"invalid JSON: {exc}")) from None
            except RecursionError:
                raise ConfigError(
                    problem(source, "", f"invalid JSON: nested more than {MAX_DOCUMENT_DEPTH} levels deep")
                ) from None
            too_large = document_size_problem(data)
            if too_large:
                raise ConfigError(problem(source, "", f"invalid JSON: {too_large}"))
        else:
            data, error = read_yaml(path, source)
            if error:
                raise ConfigError(error)
    return validate_params(data, catalog, source)


def effective_params(catalog: Catalog, overrides: Mapping | None = None) -> dict:
    """Every parameter: the catalog's default unless ``overrides`` sets it (exemptions
    are not parameters and are left out)."""
    values = catalog.defaults()
    for name, value in (overrides or {}).items():
        if name != EXEMPTIONS:
            values[name] = copy.deepcopy(value)
    return values


def _substitute(value: Any, account: str, region: str) -> Any:
    if isinstance(value, str):
        return value.replace("{account}", account).replace("{region}", region)
    if isinstance(value, list):
        return [_substitute(v, account, region) for v in value]
    if isinstance(value, dict):
        return {k: _substitute(v, account, region) for k, v in value.items()}
    return value


def resolve_params(params: Mapping, posture: Mapping) -> dict:
    """``params`` for one task: ``{account}``/``{region}`` in string values (also inside
    lists) replaced by the task's own; ``exemptions`` left as they are."""
    account, region = str(posture["account_id"]), str(posture["region"])
    return {
        name: copy.deepcopy(value) if name == EXEMPTIONS else _substitute(value, account, region)
        for name, value in params.items()
    }


# --------------------------------------------------------------------------- exemptions


def exemption_expired(exemption: Mapping, today: dt.date) -> bool:
    """Expired when its ``expires`` date is before ``today`` (the day itself is valid)."""
    return dt.date.fromisoformat(str(exemption["expires"])) < today


def exemption_matches(exemption: Mapping, rule_id: str, workload: str) -> bool:
    """Rule id equal (or ``*``) and ``fnmatchcase(workload, exemption.workload)``."""
    return exemption["rule"] in (ALL_RULES, rule_id) and fnmatchcase(workload, exemption["workload"])


def match_exemptions(
    exemptions: Iterable[Mapping], rule_id: str, workload: str, today: dt.date
) -> tuple[Mapping | None, list[Mapping]]:
    """``(first active matching exemption or None, expired matching exemptions)``."""
    active: Mapping | None = None
    expired: list[Mapping] = []
    for exemption in exemptions:
        if not exemption_matches(exemption, rule_id, workload):
            continue
        if exemption_expired(exemption, today):
            expired.append(exemption)
        elif active is None:
            active = exemption
    return active, expired
