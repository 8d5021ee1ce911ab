"""The JSON Schema (2020-12) documents of the envelopes, as committed under ``docs/schemas/``.

``receiver schemas --out DIR`` writes them; the receiver serves them at
``/schemas/<name>.schema.json``; a test fails when the committed files and the models differ.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel, TypeAdapter
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from receiver.contract.models import ENVELOPE_MODELS, Envelope

DIALECT = "https://json-schema.org/draft/2020-12/schema"
ID_PREFIX = "urn:metastudio-receiver:schemas:"
# ``envelope`` is any of the others.
SCHEMA_NAMES = ("envelope", *ENVELOPE_MODELS)


def schema_document(name: str) -> dict[str, Any]:
    """The schema named ``name`` (one of :data:`SCHEMA_NAMES`), self-contained."""
    if name == "envelope":
        schema = TypeAdapter(Envelope).json_schema()
        schema["title"] = "Envelope"
        schema["description"] = "Any envelope the receiver publishes."
    else:
        schema = ENVELOPE_MODELS[name].model_json_schema()
    return {"$schema": DIALECT, "$id": ID_PREFIX + name, **schema}


def schema_documents() -> dict[str, dict[str, Any]]:
    """Every schema by name."""
    return {name: schema_document(name) for name in SCHEMA_NAMES}


def component_schemas(ref_prefix: str) -> tuple[dict[str, str], dict[str, Any]]:
    """Every envelope model's schema as one set of definitions referenced by ``ref_prefix``
    (``#/components/schemas/`` in an AsyncAPI document): the model's definition name per
    schema name, and the definitions."""
    mode: JsonSchemaMode = "validation"
    models: list[tuple[type[BaseModel], JsonSchemaMode]] = [
        (model, mode) for model in ENVELOPE_MODELS.values()
    ]
    refs, definitions = models_json_schema(models, ref_template=ref_prefix + "{model}")
    names = {
        name: refs[(model, mode)]["$ref"].removeprefix(ref_prefix)
        for name, model in ENVELOPE_MODELS.items()
    }
    return names, definitions.get("$defs", {})


def encode(document: dict[str, Any]) -> bytes:
    """A schema as committed: indented, keys in the models' order, a final newline."""
    return orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n"


def write_schemas(directory: Path) -> list[Path]:
    """Write every schema into ``directory`` as ``<name>.schema.json``; the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, document in schema_documents().items():
        path = directory / f"{name}.schema.json"
        path.write_bytes(encode(document))
        written.append(path)
    return written
