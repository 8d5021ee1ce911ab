"""``receiver healthcheck`` follows the configuration: port, TLS, --dev-tls, environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import trustme

from receiver.config import ServerSettings, load_settings
from receiver.healthcheck import probe_address, schemes
from tests.helpers import free_port, running, write_config


def healthcheck(config: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RECEIVER_")}
    return subprocess.run(
        [sys.executable, "-m", "receiver.cli", "healthcheck", "--config", str(config)],
        capture_output=True,
        text=True,
        env={**clean, **env},
        timeout=30,
    )


def test_healthy_on_a_port_other_than_8080(tmp_path: Path) -> None:
    port = free_port()
    config = write_config(tmp_path, port)
    with running(config, port):
        result = healthcheck(config)
    assert result.returncode == 0, result.stderr
    assert f"http://127.0.0.1:{port}/livez" in result.stdout


def test_unhealthy_when_nothing_listens(tmp_path: Path) -> None:
    config = write_config(tmp_path, free_port())
    result = healthcheck(config)
    assert result.returncode == 1
    assert result.stderr.startswith("not alive: ")
    assert "Traceback" not in result.stderr


def test_healthy_with_a_configured_certificate(tmp_path: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(cert_path))
    cert.private_key_pem.write_to_path(str(key_path))
    port = free_port()
    config = write_config(tmp_path, port, tls=(cert_path, key_path))
    with running(config, port, scheme="https"):
        result = healthcheck(config)
    assert result.returncode == 0, result.stderr
    assert f"https://127.0.0.1:{port}/livez" in result.stdout


def test_healthy_with_dev_tls(tmp_path: Path) -> None:
    port = free_port()
    config = write_config(tmp_path, port)
    with running(config, port, scheme="https", serve_args=("--dev-tls",)):
        result = healthcheck(config)
    assert result.returncode == 0, result.stderr
    assert f"https://127.0.0.1:{port}/livez" in result.stdout


def test_port_from_the_environment_wins_as_it_does_for_serve(tmp_path: Path) -> None:
    config = write_config(tmp_path, free_port())
    port = free_port()
    with running(config, port, env={"RECEIVER_SERVER__PORT": str(port)}):
        result = healthcheck(config, RECEIVER_SERVER__PORT=str(port))
    assert result.returncode == 0, result.stderr
    assert f":{port}/livez" in result.stdout


def test_a_config_error_is_unhealthy_in_one_line(tmp_path: Path) -> None:
    result = healthcheck(tmp_path / "missing.toml")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"config error: config file not found: {tmp_path / 'missing.toml'}"
    ]


@pytest.mark.parametrize(
    ("host", "expected"),
    [("0.0.0.0", "127.0.0.1"), ("::", "::1"), ("[::]", "::1"), ("10.1.2.3", "10.1.2.3")],
)
def test_a_wildcard_bind_is_probed_on_loopback(host: str, expected: str) -> None:
    assert probe_address(ServerSettings(host=host, port=9000)) == (expected, 9000)


def test_https_first_only_when_a_certificate_is_configured(tmp_path: Path) -> None:
    assert schemes(load_settings(write_config(tmp_path, 9000)).server) == ["http", "https"]
    tls = ServerSettings(tls_certfile=tmp_path / "c.pem", tls_keyfile=tmp_path / "k.pem")
    assert schemes(tls) == ["https"]
