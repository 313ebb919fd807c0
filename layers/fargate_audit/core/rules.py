"""The rule catalog: ``<ID>.yaml``, ``parameters.yaml``, ``mappings.yaml`` (``rules/`` in a checkout).

Every file is validated against ``schema.json`` (rule files against the schema
itself, the two others against its ``$defs``) plus the checks a schema cannot express:
the id matches the file name, ids are unique, every parameter a rule names is declared,
every check names a function of :mod:`fargate_audit.core.checks`, every mapping names a rule,
every parameter's default satisfies its schema. Loading fails closed: any problem raises
:class:`~fargate_audit.core.errors.ConfigError` with one line naming the file and the field.

Where the rules live (first match): the ``rules_dir`` argument, the environment variable
``FARGATE_AUDIT_RULES_DIR`` (people who keep their own catalog), else the shipped catalog,
``fargate_audit/catalog/``: package data, the one copy that a checkout (where ``rules/`` is a
symlink to it), the wheel and the Lambda layer all read.

Loading is cheap enough for a Lambda cold start: libyaml's loader when available and
``jsonschema`` imported only when validating.
"""

from __future__ import annotations

import copy
import json
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fargate_audit.core.errors import ConfigError

try:
    _BaseLoader: type = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - PyYAML built without libyaml
    _BaseLoader = yaml.SafeLoader


class _YamlLoader(_BaseLoader):  # type: ignore[misc, valid-type]
    """The safe loader (libyaml's when available) without YAML 1.1 timestamps: a date
    stays the text written (validated where it is used, with a message naming the key)."""


_YamlLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in _BaseLoader.yaml_implicit_resolvers.items()
}

SEVERITIES = ("INFORMATIONAL", "LOW", "MEDIUM", "HIGH", "CRITICAL")
# What a rule's check reads (rule file ``evaluation``): a task Posture (scans, task and
# config events, sweeps) or a workload's Discovery (DNS query logs, the dns_logs function).
TASK_POSTURE, WORKLOAD_DISCOVERY = "task-posture", "workload-discovery"
RULES_DIR_ENV = "FARGATE_AUDIT_RULES_DIR"
# The shipped catalog: package data, the one copy the checkout, the wheel and the layer read.
CATALOG_DIR = Path(__file__).resolve().parents[1] / "catalog"
SCHEMA_FILE = "schema.json"
PARAMETERS_FILE = "parameters.yaml"
MAPPINGS_FILE = "mappings.yaml"
_RULE_SUFFIXES = (".yaml", ".yml")
_NOT_RULE_FILES = frozenset({"parameters.yaml", "parameters.yml", "mappings.yaml", "mappings.yml"})
_MAX_MESSAGE = 300


@dataclass(frozen=True)
class Applicability:
    requires: tuple[str, ...]
    check: str


@dataclass(frozen=True)
class Rule:
    id: str
    title: str
    severity: str
    description: str
    remediation: str
    requires: tuple[str, ...]
    check: str
    applicability: Applicability | None
    parameters: tuple[str, ...]
    fixtures: dict = field(repr=False, compare=False)
    source: str = field(default="", compare=False)
    evaluation: str = TASK_POSTURE


@dataclass(frozen=True)
class Parameter:
    name: str
    description: str
    schema: dict
    default: Any


@dataclass(frozen=True, eq=False)
class Catalog:
    """The validated catalog. ``rules`` in id order; ``parameters`` by name;
    ``mappings`` by rule id (``{"securityhub": [...], "cis_aws_foundations": [...],
    "nist_800_53_rev5": [...]}``, absent keys = no counterpart)."""

    rules: tuple[Rule, ...]
    parameters: dict[str, Parameter]
    mappings: dict[str, dict]
    rules_dir: Path

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(rule.id for rule in self.rules)

    @property
    def posture_rules(self) -> tuple[Rule, ...]:
        """The rules evaluated on task postures (scans, events, sweeps), in id order."""
        return tuple(rule for rule in self.rules if rule.evaluation == TASK_POSTURE)

    @property
    def discovery_rules(self) -> tuple[Rule, ...]:
        """The rules evaluated on a workload's discovered destinations (DNS query logs)."""
        return tuple(rule for rule in self.rules if rule.evaluation == WORKLOAD_DISCOVERY)

    def rule(self, rule_id: str) -> Rule:
        for rule in self.rules:
            if rule.id == rule_id:
                return rule
        raise KeyError(rule_id)

    def defaults(self) -> dict[str, Any]:
        """Every parameter's default (a fresh copy the caller may change)."""
        return {name: copy.deepcopy(p.default) for name, p in self.parameters.items()}


# --------------------------------------------------------------------------- discovery


def find_rules_dir(rules_dir: str | os.PathLike | None = None) -> Path:
    """The rules directory (see the module docstring for the order)."""
    if rules_dir is not None:
        path = Path(rules_dir)
        if not path.is_dir():
            raise ConfigError(f"{path}: rules directory not found")
        return path
    from_env = os.environ.get(RULES_DIR_ENV)
    if from_env:
        path = Path(from_env)
        if not path.is_dir():
            raise ConfigError(f"{RULES_DIR_ENV}: {path}: rules directory not found")
        return path
    path = CATALOG_DIR
    if not (path / SCHEMA_FILE).is_file():
        raise ConfigError(f"{path}: shipped rule catalog missing (broken install?); set {RULES_DIR_ENV}")
    return path


# --------------------------------------------------------------------------- messages


def field_path(parts: Iterable[Any]) -> str:
    """``["fixtures", "fail", 0, "patch"]`` -> ``fixtures.fail[0].patch``."""
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += ("." if text else "") + str(part)
    return text


def one_line(text: str, limit: int = _MAX_MESSAGE) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def problem(source: str, path: Iterable[Any] | str, message: str) -> str:
    """``"<file>: <field path>: <message>"`` on one line (no field part when empty)."""
    where = path if isinstance(path, str) else field_path(path)
    return f"{source}: {where}: {one_line(message)}" if where else f"{source}: {one_line(message)}"


def schema_error_problem(source: str, error: Any, prefix: Iterable[Any] = ()) -> str:
    """One line for a ``jsonschema.ValidationError``; an unknown key is named in the path."""
    path = [*prefix, *error.absolute_path]
    message = error.message
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = set(error.schema.get("properties") or {})
        patterns = list(error.schema.get("patternProperties") or {})
        extras = sorted(
            (
                key
                for key in error.instance
                if key not in known and not any(re.search(p, str(key)) for p in patterns)
            ),
            key=str,
        )
        if extras:
            path.append(extras[0])
            allowed = f" (allowed: {', '.join(sorted(known))})" if known else ""
            message = f"unknown key{allowed}"
    return problem(source, path, message)


def schema_problems(source: str, validator: Any, document: Any, prefix: Iterable[Any] = ()) -> list[str]:
    """Every schema violation of ``document`` as one line each, most relevant first."""
    errors = list(validator.iter_errors(document))
    if not errors:
        return []
    from jsonschema.exceptions import relevance

    return [schema_error_problem(source, error, prefix) for error in sorted(errors, key=relevance)]


def read_yaml(path: Path, source: str) -> tuple[Any, str | None]:
    """``(document, None)`` or ``(None, problem line)``."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return None, problem(source, "", f"cannot read: {exc}")
    try:
        return yaml.load(text, Loader=_YamlLoader), None  # noqa: S506 - a safe loader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1} column {mark.column + 1}: " if mark is not None else ""
        what = getattr(exc, "problem", None) or str(exc)
        return None, problem(source, "", f"invalid YAML: {where}{what}")


# --------------------------------------------------------------------------- loading


class _Unchecked:
    """Stands in for jsonschema's validator class when the shipped catalog is loaded."""

    def __init__(self, schema: Any = None) -> None:
        pass

    @staticmethod
    def check_schema(schema: Any) -> None:
        return None

    @staticmethod
    def iter_errors(document: Any) -> Iterator[Any]:
        return iter(())


class _NoSchemaError(Exception):
    pass


def _validator_for(schema: dict, ref: str | None = None, validator: Any = None) -> Any:
    if validator is None:
        from jsonschema import Draft202012Validator as validator
    if ref is not None:
        schema = {"$schema": schema.get("$schema"), "$defs": schema.get("$defs", {}), "$ref": ref}
    return validator(schema)


def _load(rules_dir: Path, check_schemas: bool, trusted: bool = False) -> tuple[Catalog | None, list[str]]:
    """``check_schemas``: also check schema.json itself against the JSON Schema
    meta-schema (``validate_rules_dir`` does; a cold start skips that 30 ms check).
    ``trusted``: no JSON Schema validation at all (the shipped catalog, see load_catalog);
    the checks a schema cannot express still run."""
    if trusted:
        Draft202012Validator: Any = _Unchecked
        SchemaError: Any = _NoSchemaError
    else:
        from jsonschema import Draft202012Validator
        from jsonschema.exceptions import SchemaError

    from fargate_audit.core import checks

    problems: list[str] = []

    def src(name: str) -> str:
        return str(rules_dir / name)

    try:
        schema = json.loads((rules_dir / SCHEMA_FILE).read_text(encoding="utf-8"))
        if check_schemas:
            Draft202012Validator.check_schema(schema)
    except (OSError, ValueError) as exc:
        return None, [problem(src(SCHEMA_FILE), "", f"cannot load: {exc}")]
    except SchemaError as exc:
        return None, [problem(src(SCHEMA_FILE), exc.absolute_path, f"not a valid JSON Schema: {exc.message}")]

    # parameters.yaml
    parameters: dict[str, Parameter] = {}
    params_doc, error = read_yaml(rules_dir / PARAMETERS_FILE, src(PARAMETERS_FILE))
    if error:
        problems.append(error)
    else:
        validator = _validator_for(schema, "#/$defs/parameters_file", Draft202012Validator)
        found = schema_problems(src(PARAMETERS_FILE), validator, params_doc)
        problems.extend(found)
        if not found:
            for name, spec in params_doc.items():
                try:
                    Draft202012Validator.check_schema(spec["schema"])
                except SchemaError as exc:
                    problems.append(
                        problem(
                            src(PARAMETERS_FILE),
                            [name, "schema", *exc.absolute_path],
                            f"not a valid JSON Schema: {exc.message}",
                        )
                    )
                    continue
                problems.extend(
                    schema_problems(
                        src(PARAMETERS_FILE),
                        Draft202012Validator(spec["schema"]),
                        spec["default"],
                        prefix=[name, "default"],
                    )
                )
                parameters[name] = Parameter(name, spec["description"], spec["schema"], spec["default"])

    # rule files
    rule_validator = Draft202012Validator(schema)
    rules: dict[str, Rule] = {}
    rule_files = sorted(
        p
        for p in rules_dir.iterdir()
        if p.is_file() and p.suffix in _RULE_SUFFIXES and p.name not in _NOT_RULE_FILES
    )
    if not rule_files:
        problems.append(problem(str(rules_dir), "", "no rule files (<ID>.yaml)"))
    for path in rule_files:
        source = src(path.name)
        doc, error = read_yaml(path, source)
        if error:
            problems.append(error)
            continue
        found = schema_problems(source, rule_validator, doc)
        if found:
            problems.extend(found)
            continue
        rule_problems: list[str] = []
        if doc["id"] != path.stem:
            rule_problems.append(problem(source, "id", f"{doc['id']!r} does not match the file name"))
        if doc["id"] in rules:
            rule_problems.append(problem(source, "id", f"{doc['id']!r} duplicates {rules[doc['id']].source}"))
        for i, name in enumerate(doc["parameters"]):
            if parameters and name not in parameters:
                rule_problems.append(
                    problem(source, ["parameters", i], f"{name!r} is not declared in {PARAMETERS_FILE}")
                )
        if doc["check"] not in checks.CHECKS:
            rule_problems.append(problem(source, "check", f"{doc['check']!r} is not a function of checks"))
        applicability = doc.get("applicability")
        evaluation = doc.get("evaluation", TASK_POSTURE)
        if evaluation == WORKLOAD_DISCOVERY:  # a Discovery has no posture facts to require
            for key in ("requires", "applicability"):
                if doc.get(key):
                    rule_problems.append(
                        problem(source, key, f"a {WORKLOAD_DISCOVERY} rule reads no posture facts")
                    )
        if applicability and applicability["check"] not in checks.APPLICABILITY:
            rule_problems.append(
                problem(
                    source,
                    "applicability.check",
                    f"{applicability['check']!r} is not an applicability function of checks",
                )
            )
        problems.extend(rule_problems)
        if rule_problems:
            continue
        rules[doc["id"]] = Rule(
            id=doc["id"],
            title=doc["title"],
            severity=doc["severity"],
            description=doc["description"],
            remediation=doc["remediation"],
            requires=tuple(doc["requires"]),
            check=doc["check"],
            applicability=(
                Applicability(tuple(applicability["requires"]), applicability["check"])
                if applicability
                else None
            ),
            parameters=tuple(doc["parameters"]),
            fixtures=doc["fixtures"],
            source=source,
            evaluation=evaluation,
        )

    # mappings.yaml
    mappings: dict[str, dict] = {}
    mappings_doc, error = read_yaml(rules_dir / MAPPINGS_FILE, src(MAPPINGS_FILE))
    if error:
        problems.append(error)
    else:
        validator = _validator_for(schema, "#/$defs/mappings_file", Draft202012Validator)
        found = schema_problems(src(MAPPINGS_FILE), validator, mappings_doc)
        problems.extend(found)
        if not found:
            declared = {path.stem for path in rule_files}
            for rule_id in mappings_doc:
                if rule_id not in declared:
                    problems.append(problem(src(MAPPINGS_FILE), rule_id, "mapping for an unknown rule id"))
            mappings = {rule_id: mappings_doc[rule_id] for rule_id in sorted(mappings_doc)}

    if problems:
        return None, problems
    catalog = Catalog(
        rules=tuple(rules[rule_id] for rule_id in sorted(rules)),
        parameters=parameters,
        mappings=mappings,
        rules_dir=rules_dir,
    )
    return catalog, []


def validate_rules_dir(path: str | os.PathLike) -> list[str]:
    """Every problem of the rules directory ``path``, one line each (empty = valid).
    For ``fargate-audit rules validate DIR``."""
    rules_dir = Path(path)
    if not rules_dir.is_dir():
        return [f"{rules_dir}: rules directory not found"]
    _, problems = _load(rules_dir, check_schemas=True)
    return problems


def load_catalog(rules_dir: str | os.PathLike | None = None) -> Catalog:
    """The validated catalog (every file checked as by :func:`validate_rules_dir`, except
    schema.json against the meta-schema); :class:`ConfigError` (one line) on the first
    problem, followed by the count of the others."""
    path = find_rules_dir(rules_dir)
    if rules_dir is None and not os.environ.get(RULES_DIR_ENV):
        # The shipped catalog is part of the product, proven valid by its tests and by
        # `rules validate`: its JSON Schema validation (and importing jsonschema, 70 ms
        # together: a tenth of a 1,000-task scan) is skipped. Should it be broken anyway
        # (an edited installation), the full validation below says how.
        try:
            catalog, _ = _load(path, check_schemas=False, trusted=True)
        except (KeyError, TypeError, AttributeError, ValueError):
            catalog = None
        if catalog is not None:
            return catalog
    catalog, problems = _load(path, check_schemas=False)
    if catalog is None:
        more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
        raise ConfigError(problems[0] + more)
    return catalog
