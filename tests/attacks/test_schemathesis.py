"""Schemathesis against the receiver's own OpenAPI (``/openapi.json``): no server error.

Two runs with a bounded number of examples per operation: against the signed target
(most callbacks stop at the signature check) and against a receiver that accepts
unauthenticated callbacks, so generated bodies reach the parser and the intake.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.attacks.support import Target
from tests.faults.support import LEDGER, Profile, new_port, receiver_config, started


def run_schemathesis(base: str, examples: int, workdir: Path) -> int:
    """Run the CLI with the not_a_server_error check; the number of generated cases."""
    result = subprocess.run(
        [
            str(Path(sys.executable).with_name("schemathesis")),
            "run",
            f"{base}/openapi.json",
            "--checks",
            "not_a_server_error",
            "--max-examples",
            str(examples),
            "--request-timeout",
            "10",
            "--no-color",
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=workdir,
        timeout=600,
    )
    output = result.stdout + result.stderr
    found = re.search(r"(\d+) generated", output)
    assert result.returncode == 0, output[-4000:]
    assert found, output[-2000:]
    generated = int(found.group(1))
    LEDGER.add(schemathesis_cases=generated, server_errors=0)
    print(f"schemathesis against {base}: {generated} cases generated, all passed")
    return generated


def test_schemathesis_signed_target(target: Target, profile: Profile, tmp_path: Path) -> None:
    assert run_schemathesis(target.base, profile.schemathesis_examples, tmp_path) > 0


def test_schemathesis_unauthenticated_receiver(
    tmp_path_factory: pytest.TempPathFactory, profile: Profile
) -> None:
    directory = tmp_path_factory.mktemp("schemathesis-open")
    port = new_port()
    auth = 'type = ["NONE"]\nallow_unauthenticated = true\n'
    config = receiver_config(directory, port, auth=auth, server="max_body_bytes = 4096")
    with started(config, port) as receiver:
        assert run_schemathesis(receiver.base, profile.schemathesis_examples, directory) > 0
        logs = receiver.logs()
    assert '"unhandled error"' not in logs and "Traceback" not in logs
