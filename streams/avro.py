"""Avro schemas derived from the pydantic event models: one source of truth for both.

``python -m streams.avro`` writes the current schema of every record to ``schemas/avro/``; a test checks
that the files on disk equal what the models generate, so they cannot drift apart.
"""

from __future__ import annotations

import json
import types
import typing
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from streams.events import AVRO_NAMESPACE, EVENT_TYPES, RawWebhook

__all__ = ["SCHEMA_DIR", "avro_schema", "record_models", "schema_path", "write_schemas"]

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas" / "avro"

_PRIMITIVES: dict[Any, str] = {str: "string", int: "long", bool: "boolean", bytes: "bytes", float: "double"}


def record_models() -> list[type[BaseModel]]:
    """Every model written to a topic as an Avro record."""
    return [RawWebhook, *EVENT_TYPES.values()]


def _record_name(model: type[BaseModel]) -> str:
    return str(getattr(model, "avro_name", model.__name__))


def schema_path(model: type[BaseModel], schema_dir: Path = SCHEMA_DIR) -> Path:
    return schema_dir / f"{AVRO_NAMESPACE}.{_record_name(model)}.avsc"


def _avro_type(annotation: Any) -> Any:
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        members = [a for a in get_args(annotation) if a is not type(None)]
        if len(members) != 1 or len(get_args(annotation)) != 2:
            raise TypeError(f"only Optional[X] unions map to Avro, got {annotation}")
        return ["null", _avro_type(members[0])]
    if origin is Literal:
        return "string"
    if origin is list:
        return {"type": "array", "items": _avro_type(get_args(annotation)[0])}
    if origin is dict:
        key, value = get_args(annotation)
        if key is not str:
            raise TypeError("Avro map keys are strings")
        return {"type": "map", "values": _avro_type(value)}
    if annotation in _PRIMITIVES:
        return _PRIMITIVES[annotation]
    raise TypeError(f"no Avro mapping for {annotation!r}")


def avro_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The Avro record schema of a model, fields in declaration order."""
    hints = typing.get_type_hints(model)
    fields = []
    for name, info in model.model_fields.items():
        field: dict[str, Any] = {"name": name, "type": _avro_type(hints[name])}
        if info.default is not PydanticUndefined:
            field["default"] = info.default
        elif info.default_factory is not None:
            field["default"] = info.default_factory()  # type: ignore[call-arg]
        fields.append(field)
    doc = getattr(model, "avro_doc", "") or (model.__doc__ or "").strip().splitlines()[0]
    return {"type": "record", "name": _record_name(model), "namespace": AVRO_NAMESPACE, "doc": doc,
            "fields": fields}


def render(model: type[BaseModel]) -> str:
    return json.dumps(avro_schema(model), indent=2) + "\n"


def write_schemas(schema_dir: Path = SCHEMA_DIR) -> list[Path]:
    """Write the current schema of every record model; returns the files that changed."""
    schema_dir.mkdir(parents=True, exist_ok=True)
    changed = []
    for model in record_models():
        path = schema_path(model, schema_dir)
        text = render(model)
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
            changed.append(path)
    return changed


if __name__ == "__main__":
    for p in write_schemas():
        print(f"wrote {p}")
