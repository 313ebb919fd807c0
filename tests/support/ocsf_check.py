"""OCSF events checked against the published schema of the pinned version, strictly.

``pydantic-ocsf`` (requirements-dev.txt) bundles the OCSF schema export of each version and
builds pydantic models from it. Its models accept unknown attributes (``extra="allow"``)
and coerce some values, so :func:`problems` also walks every key of an event against the
model's fields (recursively), and checks every enum id against the published schema's
enum and its sibling caption (``severity_id`` 4 <-> ``severity`` "High"). The enums come
from the schema file rather than the models: in pydantic-ocsf 3.0.0 the model of a
Compliance Finding types the finding's own ``status_id`` with the ``check`` object's
enum (0-3), a name clash; the schema file says New, In Progress, ..., Resolved (1-6).
"""

from __future__ import annotations

import importlib.resources
import json
import re
import types
import typing
from functools import cache
from typing import Any

import pydantic
from ocsf.v1_7_0 import objects
from ocsf.v1_7_0.events import ComplianceFinding

OCSF_VERSION = "1.7.0"
CLASS = "compliance_finding"

# OCSF's cloud profile (profiles/cloud.json, which the bundled schema $includes into
# base_event without carrying it): the attributes it adds to an event. The models leave
# profile attributes out, so an event's ``cloud`` is checked against the Cloud object.
CLOUD_PROFILE = {"cloud": objects.Cloud, "api": objects.Api}


@cache
def published_schema() -> dict:
    path = importlib.resources.files("ocsf") / "schemas" / f"v{OCSF_VERSION.replace('.', '_')}.json"
    schema = json.loads(path.read_text(encoding="utf-8"))
    assert schema["version"] == OCSF_VERSION
    return schema


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _chain(kind: str, name: str) -> list[dict]:
    """The attribute specs of an event class or object and of everything it extends."""
    schema = published_schema()
    specs = []
    while name and name in schema[kind]:
        spec = schema[kind][name]
        specs.append(spec.get("attributes") or {})
        name = spec.get("extends")
    return specs


def _attribute(kind: str, name: str, key: str) -> dict:
    """One attribute as the schema defines it for that class or object: the dictionary's
    definition under its class's and parents' refinements; ``enum`` is the union."""
    dictionary = published_schema()["dictionary"]["attributes"].get(key) or {}
    merged = dict(dictionary)
    enum = dict(dictionary.get("enum") or {})
    for attributes in reversed(_chain(kind, name)):
        spec = attributes.get(key)
        if isinstance(spec, dict):
            merged.update(spec)
            enum.update(spec.get("enum") or {})
    merged["enum"] = enum
    return merged


def _models_in(annotation: Any) -> list[type[pydantic.BaseModel]]:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _models_in(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType, list):
        return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]
    if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
        return [annotation]
    return []


def _free_form(annotation: Any) -> bool:
    """``dict[str, Any]`` (resource ``data``) or ``Any``: any JSON goes."""
    if annotation is Any:
        return True
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_free_form(arg) for arg in typing.get_args(annotation))
    return origin is dict or annotation is dict


def _is_list(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_is_list(arg) for arg in typing.get_args(annotation))
    return origin is list or annotation is Any


def _walk(
    data: dict,
    model: type[pydantic.BaseModel],
    kind: str,
    path: str,
    extra: dict[str, type[pydantic.BaseModel]] | None = None,
) -> list[str]:
    found: list[str] = []
    fields = {(f.alias or n): f for n, f in model.model_fields.items()}
    name = CLASS if kind == "events" else _snake(model.__name__)
    for key, value in data.items():
        where = f"{path}.{key}"
        if value is None:
            found.append(f"{where}: null (leave the attribute out instead)")
            continue
        spec = _attribute(kind, name, key)
        if spec["enum"] and key.endswith("_id"):
            if str(value) not in spec["enum"]:
                found.append(f"{where}: {value!r} is not in the schema's enum {sorted(spec['enum'])}")
            else:
                sibling = spec.get("sibling")
                caption = spec["enum"][str(value)].get("caption")
                if sibling and str(value) != "99" and sibling in data and data[sibling] != caption:
                    found.append(f"{path}.{sibling}: {data[sibling]!r}, the caption of {key} is {caption!r}")
        if extra and key in extra:
            nested_models: list[type[pydantic.BaseModel]] = [extra[key]]
            annotation: Any = extra[key]
        elif key in fields:
            annotation = fields[key].annotation
            nested_models = _models_in(annotation)
        else:
            found.append(f"{where}: not an attribute of {model.__name__} in OCSF {OCSF_VERSION}")
            continue
        if (isinstance(value, dict) and not nested_models and not _free_form(annotation)) or (
            isinstance(value, list) and not _is_list(annotation)
        ):
            found.append(f"{where}: a {type(value).__name__} where the schema has {annotation}")
            continue
        if not nested_models or _free_form(annotation):
            continue
        items = value if isinstance(value, list) else [value]
        for index, item in enumerate(items):
            item_where = f"{where}[{index}]" if isinstance(value, list) else where
            if not isinstance(item, dict):
                found.append(f"{item_where}: {item!r} where the schema has an object")
                continue
            found += _walk(item, nested_models[0], "objects", item_where)
    return found


def _loc(error: Any) -> str:
    return "".join(f".{part}" for part in error["loc"])


def problems(event: dict) -> list[str]:
    """Everything wrong with one event as an OCSF Compliance Finding of the pinned version:
    the model's validation errors, keys it does not define (recursively), enum ids the
    schema does not list, captions that disagree with their ids, wrong class/type ids."""
    found: list[str] = []
    try:
        ComplianceFinding.model_validate(json.loads(json.dumps(event)))
    except pydantic.ValidationError as exc:
        found += [f"event{_loc(e)}: {e['msg']}" for e in exc.errors()]
    profiles = (event.get("metadata") or {}).get("profiles") or []
    extra = CLOUD_PROFILE if "cloud" in profiles else {}
    for key, model in extra.items():
        if key in event:
            try:
                model.model_validate(event[key])
            except pydantic.ValidationError as exc:
                found += [f"event.{key}{_loc(e)}: {e['msg']}" for e in exc.errors()]
    found += _walk(event, ComplianceFinding, "events", "event", extra)
    schema = published_schema()
    category = schema["categories_meta"]["attributes"][schema["events"]["finding"]["category"]]["uid"]
    class_uid = category * 1000 + schema["events"][CLASS]["uid"]
    if event.get("category_uid") != category or event.get("class_uid") != class_uid:
        found.append(f"event: category_uid/class_uid {event.get('category_uid')}/{event.get('class_uid')}")
    if event.get("type_uid") != class_uid * 100 + (event.get("activity_id") or 0):
        found.append(f"event.type_uid: {event.get('type_uid')} is not class_uid * 100 + activity_id")
    if (event.get("metadata") or {}).get("version") != OCSF_VERSION:
        found.append(f"event.metadata.version: not {OCSF_VERSION}")
    return found
