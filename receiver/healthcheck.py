"""``receiver healthcheck``: ask the running receiver's ``/livez`` where its settings put it.

The container's HEALTHCHECK runs this with the same configuration as ``serve`` (file and
``RECEIVER_*`` environment), so another port, a certificate or ``--dev-tls`` keep the
container healthy instead of hard-coding ``http://127.0.0.1:8080``.
"""

from __future__ import annotations

import argparse
import http.client
import ssl
import sys

from receiver.config import ConfigError, ServerSettings, load_settings

LIVEZ_PATH = "/livez"
_WILDCARDS = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}


def probe_address(server: ServerSettings) -> tuple[str, int]:
    """Where to reach the server from inside its own host: a wildcard bind means loopback."""
    host = server.host.strip("[]")
    return _WILDCARDS.get(host, host), server.port


def schemes(server: ServerSettings) -> list[str]:
    """The schemes to try: https when a certificate is configured, else http then https.

    ``serve --dev-tls`` makes its own certificate, which the configuration does not show.
    """
    return ["https"] if server.tls_certfile else ["http", "https"]


def _unverified_tls() -> ssl.SSLContext:
    # Liveness only, on the server's own host: nothing secret is sent, and the
    # certificate may be a self-signed development one or name a public host name.
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def probe(host: str, port: int, scheme: str, timeout: float) -> int:
    """The HTTP status of ``GET /livez``; OSError (and HTTPException) when unreachable."""
    connection: http.client.HTTPConnection
    if scheme == "https":
        connection = http.client.HTTPSConnection(
            host, port, timeout=timeout, context=_unverified_tls()
        )
    else:
        connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request("GET", LIVEZ_PATH)
        return connection.getresponse().status
    finally:
        connection.close()


def check(server: ServerSettings, timeout: float) -> tuple[bool, str]:
    """Whether the server answers ``/livez`` with 200, and a line saying where it was asked."""
    host, port = probe_address(server)
    shown = f"[{host}]" if ":" in host else host
    failures = []
    for scheme in schemes(server):
        where = f"{scheme}://{shown}:{port}{LIVEZ_PATH}"
        try:
            status = probe(host, port, scheme, timeout)
        except (OSError, http.client.HTTPException) as error:
            failures.append(f"{where}: {type(error).__name__}")
            continue
        if status == 200:
            return True, f"alive: {where}"
        failures.append(f"{where}: status {status}")
    return False, "not alive: " + "; ".join(failures)


def run(args: argparse.Namespace) -> int:
    """The ``healthcheck`` command: 0 alive, 1 otherwise (Docker's meaning of the codes)."""
    try:
        settings = load_settings(args.config)
    except ConfigError as error:
        print(f"config error: {error}", file=sys.stderr)
        return 1
    ok, line = check(settings.server, args.timeout)
    print(line, file=sys.stdout if ok else sys.stderr)
    return 0 if ok else 1


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``healthcheck`` subcommand."""
    parser = commands.add_parser(
        "healthcheck", help="exit 0 if the configured server answers /livez (for HEALTHCHECK)"
    )
    parser.add_argument(
        "--config", "-c", default=None, help="TOML file (default: $RECEIVER_CONFIG or built-in)"
    )
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds per attempt")
    parser.set_defaults(func=run)
