"""Manifests in, validated and defaulted objects out (many YAML documents per file).

Any error refuses the whole file: nothing of it is applied.
"""
from __future__ import annotations

import copy

import yaml

from testbed.errors import BadInput, InvalidError, required
from testbed.model.kinds import KINDS
from testbed.model.validation import default, validate


def load_manifests(text: str, source: str, for_delete: bool = False) -> list[dict]:
    """``for_delete``: only kind, apiVersion and name matter (kubectl delete -f)."""
    try:
        docs = list(yaml.safe_load_all(text))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(e, "problem", None) or str(e)
        raise BadInput(f"error parsing YAML: {where}{problem}", source) from None
    objs: list[dict] = []
    for doc in docs:
        if doc is None:
            continue
        if isinstance(doc, dict) and doc.get("kind") == "List":
            objs += [i for i in doc.get("items") or [] if i is not None]
        else:
            objs.append(doc)
    result, seen = [], {}
    for i, obj in enumerate(objs):
        obj = check_object(obj, source, for_delete)
        md = obj["metadata"]
        key = (obj["kind"], md.get("namespace"), md.get("name"))
        if key in seen:
            raise BadInput(f'{obj["kind"]} "{md.get("name")}" appears twice in the file '
                           f"(documents {seen[key] + 1} and {i + 1})", source)
        seen[key] = i
        result.append(obj)
    return result


def check_object(obj: object, source: str, for_delete: bool = False) -> dict:
    """Default and validate one object; raise the API server's error if it is bad."""
    if not isinstance(obj, dict):
        raise BadInput(f"error validating data: expected an object, got {type(obj).__name__}", source)
    missing = [f"{k} not set" for k in ("apiVersion", "kind") if not obj.get(k)]
    if missing:
        raise BadInput(f'error validating "{source}": error validating data: [{", ".join(missing)}]', source)
    kind, version = obj["kind"], obj["apiVersion"]
    k = KINDS.get(kind)
    if k is None or k.api_version != version:
        name = (obj.get("metadata") or {}).get("name", "")
        ns = (obj.get("metadata") or {}).get("namespace", "")
        raise BadInput(f'resource mapping not found for name: "{name}" namespace: "{ns}" from "{source}": '
                       f'no matches for kind "{kind}" in version "{version}"', source)
    obj = default(copy.deepcopy(obj), k.namespaced)
    if for_delete:
        if not obj["metadata"].get("name"):
            raise InvalidError(kind, "", [required("metadata.name")], source)
        return obj
    errors = validate(obj)
    if errors:
        raise InvalidError(kind, str(obj["metadata"].get("name", "")), errors, source)
    return obj
