"""``receiver schemas``: write (or check) the envelopes' JSON Schemas."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

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


def register(commands: Any) -> None:
    """Add ``schemas`` to the ``receiver`` subcommands."""
    parser = commands.add_parser("schemas", help="write the envelopes' JSON Schemas (2020-12)")
    parser.add_argument("--out", default="docs/schemas", help="directory (default: docs/schemas)")
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if a file differs"
    )
    parser.set_defaults(func=_schemas)
