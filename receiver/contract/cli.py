"""``receiver schemas`` (the envelopes' JSON Schemas) and ``receiver asyncapi`` (the
deployment's AsyncAPI 3.0 document)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from receiver.config import ConfigError, load_settings
from receiver.contract.asyncapi import asyncapi_document
from receiver.contract.schemas import encode, schema_documents, write_schemas


def _schemas(args: argparse.Namespace) -> int:
    directory = Path(args.out)
    if not args.check:
        for path in write_schemas(directory):
            print(path)
        return 0
    stale = [
        name
        for name, document in schema_documents().items()
        if not (path := directory / f"{name}.schema.json").is_file()
        or path.read_bytes() != encode(document)
    ]
    for name in stale:
        print(f"{directory / name}.schema.json differs from the models", file=sys.stderr)
    return 1 if stale else 0


def _asyncapi(args: argparse.Namespace) -> int:
    try:
        settings = load_settings(args.config)
    except ConfigError as error:
        print(f"config error: {error}", file=sys.stderr)
        return 2
    document = encode(asyncapi_document(settings))
    if args.out == "-":
        sys.stdout.buffer.write(document)
    else:
        Path(args.out).write_bytes(document)
    return 0


def register(commands: Any) -> None:
    """Add ``schemas`` and ``asyncapi`` to the ``receiver`` subcommands."""
    asyncapi = commands.add_parser(
        "asyncapi", help="write the AsyncAPI 3.0 document of a configuration's sinks (JSON)"
    )
    asyncapi.add_argument(
        "--config", "-c", default=None, help="TOML file (default: $RECEIVER_CONFIG or built-in)"
    )
    asyncapi.add_argument("--out", "-o", default="-", help="file (default: standard output)")
    asyncapi.set_defaults(func=_asyncapi)

    parser = commands.add_parser("schemas", help="write the envelopes' JSON Schemas (2020-12)")
    parser.add_argument("--out", default="docs/schemas", help="directory (default: docs/schemas)")
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if a file differs"
    )
    parser.set_defaults(func=_schemas)
