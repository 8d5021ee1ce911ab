"""A config file or data directory the receiver's user cannot use: one line, path and uid.

The receiver runs as the tests' own user on files that user owns but has no permission
on. Under root, the child first gives up the capabilities that bypass file permissions
(as uid 10001 in the image has none), so the same modes refuse it.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from tests.helpers import free_port, write_config

_PR_CAPBSET_DROP = 24
_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH, _CAP_FOWNER = 1, 2, 3


def _without_permission_bypass() -> None:
    """In the child before exec: drop what lets root ignore file modes."""
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH, _CAP_FOWNER):
        if libc.prctl(_PR_CAPBSET_DROP, capability, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "cannot drop a capability")


USER = f"uid {os.getuid()} (gid {os.getgid()})"
OWNER = f"owned by uid {os.getuid()}:{os.getgid()}"


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory the receiver's user may enter and read (pytest's tmp_path is 0700)."""
    directory = Path(tempfile.mkdtemp(prefix="receiver-access-"))
    directory.chmod(0o755)
    yield directory
    for path in (directory, *directory.rglob("*")):
        path.chmod(0o755 if path.is_dir() else 0o644)
    shutil.rmtree(directory)


def run_receiver(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECEIVER_")}
    return subprocess.run(
        [sys.executable, "-m", "receiver.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        preexec_fn=_without_permission_bypass if os.getuid() == 0 else None,
    )


def test_unreadable_config_file_is_one_line_naming_path_and_uid(shared_dir: Path) -> None:
    config = write_config(shared_dir, free_port())
    config.chmod(0o000)
    for command in ("check-config", "serve", "healthcheck"):
        result = run_receiver(command, "--config", str(config))
        assert result.returncode != 0
        assert "Traceback" not in result.stderr
        (line,) = result.stderr.strip().splitlines()
        assert line == (
            f"config error: config file {config} is not readable by {USER}: {OWNER}, mode ----------"
        )


def test_unwritable_data_directory_is_one_line_naming_path_and_uid(shared_dir: Path) -> None:
    data = shared_dir / "data"
    data.mkdir()
    config = write_config(data, free_port())
    data.chmod(0o555)  # as a root-owned bind mount looks to uid 10001
    result = run_receiver("serve", "--config", str(config))
    assert result.returncode == 3  # uvicorn's exit code for a failed start-up
    output = result.stdout + result.stderr
    assert "Traceback" not in output and "OperationalError" not in output
    failures = [
        orjson.loads(line)
        for line in output.splitlines()
        if line.startswith("{") and "start-up failed" in line
    ]
    assert [failure["message"] for failure in failures] == [
        f"start-up failed: intake database {data / 'intake.db'}: directory {data} is not "
        f"writable by {USER}: {OWNER}, mode dr-xr-xr-x"
    ]
    assert "exception" not in failures[0]


def test_existing_intake_file_not_writable_is_named(shared_dir: Path) -> None:
    data = shared_dir / "data"
    data.mkdir(mode=0o777)
    data.chmod(0o777)
    config = write_config(data, free_port())
    (data / "intake.db").write_bytes(b"")
    (data / "intake.db").chmod(0o444)
    result = run_receiver("serve", "--config", str(config))
    assert result.returncode == 3  # uvicorn's exit code for a failed start-up
    assert f"intake database {data / 'intake.db'} is not writable by {USER}" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_unwritable_dev_certificate_directory_is_one_line(shared_dir: Path) -> None:
    data = shared_dir / "data"
    data.mkdir()
    config = write_config(data, free_port())
    data.chmod(0o555)
    result = run_receiver("serve", "--config", str(config), "--dev-tls")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert (
        f"start-up failed: development certificate {data / 'dev-tls' / 'dev-cert.pem'}: "
        f"directory {data} is not writable by {USER}"
    ) in result.stderr


def test_a_relative_path_is_named_from_the_working_directory(shared_dir: Path) -> None:
    shared_dir.chmod(0o555)
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "from pathlib import Path\n"
            "from receiver.file_access import require_writable\n"
            "require_writable(Path('data/intake.db'), 'intake database')",
        ],
        capture_output=True,
        text=True,
        cwd=shared_dir,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
        timeout=60,
        preexec_fn=_without_permission_bypass if os.getuid() == 0 else None,
    )
    assert (
        f"AccessError: intake database {shared_dir / 'data' / 'intake.db'}: directory "
        f"{shared_dir} is not writable by {USER}"
    ) in result.stderr
