"""The rule catalog (``rules/`` in a checkout): one folder per rule, ``<ID>/rule.yaml`` (its
data: title, severity, parameters, fixtures...) beside ``<ID>/check.py`` (its check), plus
``parameters.yaml``, ``mappings.yaml`` and ``schema.json``. A catalog of one's own needs no
``schema.json`` (the shipped one is always used) and may keep the flat layout, one
``<ID>.yaml`` per rule.

A rule's check is found by registration: the shipped catalog's ``<ID>/check.py`` files are
imported (by path: a folder named after a rule id is not a package name) and each registers
its rule's check with ``@check`` (:mod:`fargate_audit.core.checks`), an applicability
function with ``@applicability``. A rule's check is the one its own folder registers, or the
registered check its rule file names (``check: <name>``: a variant reusing a shipped check).
Code runs only from the shipped catalog: a catalog of one's own is data, its rules reuse the
shipped checks (by their id's folder or by name), and a ``check.py`` in it must be the
shipped one of that id (a copy of the catalog) rather than silently not run.

Every file is validated against the shipped ``schema.json``, whatever the directory (rule
files against the schema itself, the two others against its ``$defs``), plus the checks a
schema cannot express: the id matches the folder (or file) name, ids are unique, every
parameter a rule names is declared, every check a rule reads is registered, every mapping
names a rule, every parameter's default satisfies its schema. Loading fails closed: any problem raises
:class:`~fargate_audit.core.errors.ConfigError` with one line naming the file and the field.

Where the rules live (first match): the ``rules_dir`` argument, the environment variable
``FARGATE_AUDIT_RULES_DIR`` (people who keep their own catalog), else the shipped catalog,
``fargate_audit/catalog/``: package data, the one copy that a checkout (where ``rules/`` is a
symlink to it), the wheel and the Lambda layer all read.

Loading is cheap enough for a Lambda cold start: libyaml's loader when available,
``jsonschema`` imported only when validating, the check modules' cached bytecode (the
layer ships unchecked-hash ``.pyc``).
"""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import json
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from fargate_audit.core.checks import CHECK, Check
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


def _mapping_without_duplicate_keys(loader, node, deep=False):
    """A mapping as the safe loader builds it, refusing a key written twice (YAML requires
    unique keys; PyYAML would keep the last silently: a second ``exemptions:`` would drop
    the first list). Keys brought in by a ``<<`` merge may be overridden, as YAML allows."""
    seen: dict = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=True)
        mark = key_node.start_mark
        try:
            first = seen.setdefault(key, mark)
        except TypeError:  # an unhashable key: the safe constructor says so itself
            continue
        if first is not mark:
            raise yaml.constructor.ConstructorError(
                None, None, f"found duplicate key {key!r} (first at line {first.line + 1})", mark
            )
    return loader.construct_mapping(node, deep=deep)


_YamlLoader.add_constructor("tag:yaml.org,2002:map", _mapping_without_duplicate_keys)

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
RULE_FILE = "rule.yaml"
CHECK_FILE = "check.py"
# The digest of the shipped catalog's files as last validated (scripts/catalog_digest.py):
# while the files match it, loading skips the JSON Schema validation (see load_catalog).
VALIDATED_FILE = "validated.json"
_RULE_SUFFIXES = (".yaml", ".yml")
_NOT_RULE_FILES = frozenset({"parameters.yaml", "parameters.yml", "mappings.yaml", "mappings.yml"})
_MAX_MESSAGE = 300


@dataclass(frozen=True)
class Applicability:
    requires: tuple[str, ...]
    check: str
    function: Callable[[Any, Any], bool] | None = field(default=None, repr=False, compare=False)


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
    # Facts of ``requires`` whose error the check handles itself (rule file ``tolerates``)
    tolerates: tuple[str, ...] = ()
    # The registered check named ``check`` (core.checks.Check): its function and inputs.
    function: Callable[[Any, Any], tuple[str, dict]] | None = field(default=None, repr=False, compare=False)
    inputs: tuple[str, ...] | None = None
    # The facts of ``requires`` whose error makes the rule ERROR before its check runs (all
    # but those it ``tolerates``): made once here, read per task by the engine
    gating: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "gating", tuple(f for f in self.requires if f not in self.tolerates))


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


# A rule, parameters or params document is small: one whose aliases expand it past this
# many values (a "billion laughs"), or nested deeper than this, is refused before anything
# walks it (validation, date handling), which would take minutes or exhaust memory or
# the stack.
MAX_DOCUMENT_VALUES = 100_000
MAX_DOCUMENT_DEPTH = 64


class _TooLarge(Exception):
    pass


def document_size_problem(document: Any) -> str | None:
    """Why ``document`` (as loaded: an alias is the same object again) is too deep, or too
    large once its aliases are expanded, to use; or None. A shared object is walked once:
    its (expanded size, height) is remembered and checked again at each place it appears.
    A document without aliases is never too large, whatever its size."""
    seen: dict[int, tuple[int, int]] = {}  # id -> (expanded values, height)
    shared = [False]

    def walk(value: Any, depth: int) -> tuple[int, int]:
        if not isinstance(value, dict | list):
            return 1, 0
        known = seen.get(id(value))
        if known is not None:
            shared[0] = True
        else:
            if depth > MAX_DOCUMENT_DEPTH:
                raise _TooLarge(f"nested more than {MAX_DOCUMENT_DEPTH} levels deep")
            total, height = 1, 0
            seen[id(value)] = (0, MAX_DOCUMENT_DEPTH + 1)  # a recursive alias: too deep
            for child in value.values() if isinstance(value, dict) else value:
                size, child_height = walk(child, depth + 1)
                total, height = total + size, max(height, child_height + 1)
                if shared[0] and total > MAX_DOCUMENT_VALUES:
                    raise _TooLarge(f"more than {MAX_DOCUMENT_VALUES} values once its aliases are expanded")
            known = seen[id(value)] = (total, height)
        if depth + known[1] > MAX_DOCUMENT_DEPTH:
            raise _TooLarge(f"nested more than {MAX_DOCUMENT_DEPTH} levels deep")
        return known

    try:
        total, _ = walk(document, 0)
    except _TooLarge as exc:
        return str(exc)
    if shared[0] and total > MAX_DOCUMENT_VALUES:
        return f"more than {MAX_DOCUMENT_VALUES} values once its aliases are expanded"
    return None


def read_yaml(path: Path, source: str) -> tuple[Any, str | None]:
    """``(document, None)`` or ``(None, problem line)``."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return None, problem(source, "", f"cannot read: {exc}")
    try:
        document = yaml.load(text, Loader=_YamlLoader)  # noqa: S506 - a safe loader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1} column {mark.column + 1}: " if mark is not None else ""
        what = getattr(exc, "problem", None) or str(exc)
        return None, problem(source, "", f"invalid YAML: {where}{what}")
    except RecursionError:
        return None, problem(source, "", f"invalid YAML: nested more than {MAX_DOCUMENT_DEPTH} levels deep")
    too_large = document_size_problem(document)
    if too_large:
        return None, problem(source, "", f"invalid YAML: {too_large}")
    return document, None


# --------------------------------------------------------------------------- registered checks


@dataclass(frozen=True)
class Registry:
    """What the ``<ID>/check.py`` files of a catalog register. ``checks`` and
    ``applicability`` by name; ``by_rule``: the check of each rule folder; ``files``: each
    rule folder's check.py; ``problems``: one line each (an import that failed, a check.py
    registering no check or two, a name registered twice)."""

    checks: dict[str, Check]
    applicability: dict[str, Check]
    by_rule: dict[str, Check]
    files: dict[str, Path]
    problems: tuple[str, ...]


def _import_check_module(path: Path, rule_id: str) -> Any:
    """The module of ``path``, imported by path (the importlib recipe for a source file)."""
    name = f"fargate_audit.catalog.{rule_id}.check"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def registered_checks(catalog_dir: Path | None = None) -> Registry:
    """What the check.py files of ``catalog_dir`` (default: the shipped catalog) register,
    imported once per process."""
    return _registry((catalog_dir or CATALOG_DIR).resolve())


@cache  # never evicted: a registry's functions stay the ones every loaded catalog holds
def _registry(catalog_dir: Path) -> Registry:
    """Imports every ``<ID>/check.py`` of ``catalog_dir`` and collects what each registers
    (its module attributes that are a ``Check``)."""
    checks: dict[str, Check] = {}
    applicability: dict[str, Check] = {}
    by_rule: dict[str, Check] = {}
    files: dict[str, Path] = {}
    problems: list[str] = []
    for path in sorted(catalog_dir.glob(f"*/{CHECK_FILE}")):
        rule_id, source = path.parent.name, str(path)
        try:
            module = _import_check_module(path, rule_id)
        except Exception as exc:  # any failure of a check module: one problem line
            problems.append(problem(source, "", f"cannot import: {type(exc).__name__}: {exc}"))
            continue
        files[rule_id] = path
        found = [value for value in vars(module).values() if isinstance(value, Check)]
        own = [c for c in found if c.kind == CHECK]
        if len(own) != 1:
            names = ", ".join(c.name for c in own) or "none"
            problems.append(
                problem(
                    source,
                    "",
                    f"registers {len(own)} checks with @check ({names}): a rule folder's registers one",
                )
            )
            continue
        by_rule[rule_id] = own[0]
        for registered in found:
            table = checks if registered.kind == CHECK else applicability
            other = table.get(registered.name)
            if other is not None and other is not registered:
                problems.append(
                    problem(
                        source, registered.name, f"also registered by {other.function.__code__.co_filename}"
                    )
                )
                continue
            table[registered.name] = registered
    return Registry(checks, applicability, by_rule, files, tuple(problems))


def _rule_sources(rules_dir: Path) -> tuple[list[tuple[str, Path, str]], list[str]]:
    """``[(id the name gives, rule file, what names it: "folder" | "file")]`` by name, and
    the problems: a folder holding no rule.yaml (``__pycache__`` and hidden ones aside)."""
    sources: list[tuple[str, Path, str]] = []
    problems: list[str] = []
    for path in sorted(rules_dir.iterdir()):
        if path.is_dir():
            if path.name.startswith((".", "__")):
                continue
            if (path / RULE_FILE).is_file():
                sources.append((path.name, path / RULE_FILE, "folder"))
            else:
                problems.append(problem(str(path), "", f"a rule folder holds its {RULE_FILE}; none here"))
        elif path.suffix in _RULE_SUFFIXES and path.name not in _NOT_RULE_FILES:
            sources.append((path.stem, path, "file"))
    return sources, problems


def _foreign_check_files(rules_dir: Path, registry: Registry) -> list[str]:
    """A catalog of one's own runs no code: its ``<ID>/check.py`` files must be the shipped
    ones (a copy of the catalog), else they would silently not run."""
    problems = []
    for path in sorted(rules_dir.glob(f"*/{CHECK_FILE}")):
        shipped = registry.files.get(path.parent.name)
        if shipped is None or shipped.read_bytes() != path.read_bytes():
            problems.append(
                problem(
                    str(path),
                    "",
                    "not the shipped check of this id: checks run only from the shipped catalog; "
                    "a rule of one's own names a registered check (check: <name>)",
                )
            )
    return problems


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

    problems: list[str] = []
    registry = registered_checks()
    problems.extend(registry.problems)
    if rules_dir.resolve() != CATALOG_DIR.resolve():
        problems.extend(_foreign_check_files(rules_dir, registry))

    def src(name: str) -> str:
        return str(rules_dir / name)

    # Rule and parameter files are checked against the shipped rules/schema.json, whatever
    # the directory (interface.md): the report and finding formats rely on what it allows. A
    # catalog of one's own needs no schema.json; one it holds is not read.
    shipped_schema = CATALOG_DIR / SCHEMA_FILE
    try:
        schema = json.loads(shipped_schema.read_text(encoding="utf-8"))
        if check_schemas:
            Draft202012Validator.check_schema(schema)
    except (OSError, ValueError) as exc:
        return None, [problem(str(shipped_schema), "", f"cannot load: {exc}")]
    except SchemaError as exc:
        where = str(shipped_schema)
        return None, [problem(where, exc.absolute_path, f"not a valid JSON Schema: {exc.message}")]

    # parameters.yaml
    parameters: dict[str, Parameter] = {}
    parameters_read = False  # parameters.yaml loaded (maybe empty): rules' names are checked
    params_doc, error = read_yaml(rules_dir / PARAMETERS_FILE, src(PARAMETERS_FILE))
    if error:
        problems.append(error)
    else:
        validator = _validator_for(schema, "#/$defs/parameters_file", Draft202012Validator)
        found = schema_problems(src(PARAMETERS_FILE), validator, params_doc)
        problems.extend(found)
        parameters_read = not found
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
    rule_sources, found = _rule_sources(rules_dir)
    problems.extend(found)
    if not rule_sources:
        problems.append(problem(str(rules_dir), "", f"no rules (<ID>/{RULE_FILE} or <ID>.yaml)"))
    for name_id, path, named_by in rule_sources:
        source = str(path)
        doc, error = read_yaml(path, source)
        if error:
            problems.append(error)
            continue
        found = schema_problems(source, rule_validator, doc)
        if found:
            problems.extend(found)
            continue
        rule_problems: list[str] = []
        if doc["id"] != name_id:
            rule_problems.append(problem(source, "id", f"{doc['id']!r} does not match the {named_by} name"))
        if doc["id"] in rules:
            rule_problems.append(problem(source, "id", f"{doc['id']!r} duplicates {rules[doc['id']].source}"))
        for i, name in enumerate(doc["parameters"]):
            if parameters_read and name not in parameters:
                rule_problems.append(
                    problem(source, ["parameters", i], f"{name!r} is not declared in {PARAMETERS_FILE}")
                )
        if "check" in doc:
            registered = registry.checks.get(doc["check"])
            if registered is None:
                rule_problems.append(
                    problem(
                        source, "check", f"{doc['check']!r} is not a registered check (@check in a check.py)"
                    )
                )
        else:
            registered = registry.by_rule.get(doc["id"])
            if registered is None:
                rule_problems.append(
                    problem(
                        source,
                        "check",
                        f"no {doc['id']}/{CHECK_FILE} registers a check; name a registered one",
                    )
                )
        applicability = doc.get("applicability")
        evaluation = doc.get("evaluation", TASK_POSTURE)
        if evaluation == WORKLOAD_DISCOVERY:  # a Discovery has no posture facts to require
            for key in ("requires", "applicability"):
                if doc.get(key):
                    rule_problems.append(
                        problem(source, key, f"a {WORKLOAD_DISCOVERY} rule reads no posture facts")
                    )
        strays = sorted(set(doc.get("tolerates") or ()) - set(doc.get("requires") or ()))
        if strays:
            rule_problems.append(problem(source, "tolerates", f"{', '.join(strays)} not in requires"))
        unjudged = sorted(set(doc.get("tolerates") or ()) - set(registered.tolerates if registered else ()))
        if registered is not None and unjudged:
            rule_problems.append(
                problem(
                    source,
                    "tolerates",
                    f"check {registered.name} does not judge {', '.join(unjudged)} itself "
                    f"(it tolerates {', '.join(registered.tolerates) or 'no fact'})",
                )
            )
        applies = registry.applicability.get(applicability["check"]) if applicability else None
        if applicability and applies is None:
            rule_problems.append(
                problem(
                    source,
                    "applicability.check",
                    f"{applicability['check']!r} is not a registered applicability function (@applicability)",
                )
            )
        problems.extend(rule_problems)
        if rule_problems or registered is None:
            continue
        rules[doc["id"]] = Rule(
            id=doc["id"],
            title=doc["title"],
            severity=doc["severity"],
            description=doc["description"],
            remediation=doc["remediation"],
            requires=tuple(doc["requires"]),
            tolerates=tuple(doc.get("tolerates") or ()),
            check=registered.name,
            applicability=(
                Applicability(tuple(applicability["requires"]), applicability["check"], applies.function)
                if applicability and applies is not None
                else None
            ),
            parameters=tuple(doc["parameters"]),
            fixtures=doc["fixtures"],
            source=source,
            evaluation=evaluation,
            function=registered.function,
            inputs=registered.inputs,
        )

    problems.extend(_variant_problems(rules, registry))

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
            declared = {name_id for name_id, _, _ in rule_sources}
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


def _variant_problems(rules: Mapping[str, Rule], registry: Registry) -> list[str]:
    """A rule reusing another folder's check (``check: NAME``) is that check's kind of rule
    (task-posture or workload-discovery: a discovery check reads no posture and would pass
    every task) and declares the parameters the check reads (those of the rule whose
    folder registers it; else the check fails the scan on a missing one)."""
    owner_of = {check.name: rule_id for rule_id, check in registry.by_rule.items()}
    found: list[str] = []
    for rule_id, rule in rules.items():
        owner = rules.get(owner_of.get(rule.check, ""))
        if owner is None or owner.id == rule_id:
            continue
        if owner.evaluation != rule.evaluation:
            found.append(
                problem(
                    rule.source,
                    "check",
                    f"{rule.check!r} is a {owner.evaluation} check ({owner.source}); "
                    f"this rule's evaluation is {rule.evaluation}",
                )
            )
        missing = [name for name in owner.parameters if name not in rule.parameters]
        if missing:
            found.append(
                problem(
                    rule.source,
                    "parameters",
                    f"check {rule.check!r} reads {', '.join(map(repr, missing))} ({owner.source}): declare "
                    + ("it" if len(missing) == 1 else "them"),
                )
            )
    return found


def validate_rules_dir(path: str | os.PathLike) -> list[str]:
    """Every problem of the rules directory ``path``, one line each (empty = valid).
    For ``fargate-audit rules validate DIR``."""
    rules_dir = Path(path)
    if not rules_dir.is_dir():
        return [f"{rules_dir}: rules directory not found"]
    _, problems = _load(rules_dir, check_schemas=True)
    return problems


def catalog_digest(rules_dir: Path) -> str:
    """sha256 over the files a validation reads (schema.json, parameters.yaml,
    mappings.yaml, every rule file), by relative path and content."""
    files = [
        path
        for path in rules_dir.iterdir()
        if path.is_file() and path.suffix in (*_RULE_SUFFIXES, ".json") and path.name != VALIDATED_FILE
    ]
    files += [path for path in rules_dir.glob(f"*/{RULE_FILE}") if path.is_file()]
    digest = hashlib.sha256()
    for path in sorted(files):
        digest.update(path.relative_to(rules_dir).as_posix().encode("utf-8") + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def validated_digest(rules_dir: Path) -> str | None:
    """The digest ``VALIDATED_FILE`` records, or None (absent, unreadable)."""
    try:
        recorded = json.loads((rules_dir / VALIDATED_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return recorded.get("sha256") if isinstance(recorded, dict) else None


def load_catalog(rules_dir: str | os.PathLike | None = None) -> Catalog:
    """The validated catalog (every file checked as by :func:`validate_rules_dir`, except
    schema.json against the meta-schema); :class:`ConfigError` (one line) on the first
    problem, followed by the count of the others."""
    path = find_rules_dir(rules_dir)
    shipped = rules_dir is None and not os.environ.get(RULES_DIR_ENV)
    if shipped and validated_digest(path) == catalog_digest(path):
        # The shipped catalog, file for file as validated when it was released (its digest):
        # its JSON Schema validation (and importing jsonschema, 70 ms together: a tenth of a
        # 1,000-task scan) is skipped. An edited file (an installation or checkout changed
        # in place) is validated in full below, and a mistake in it is one clear error.
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
