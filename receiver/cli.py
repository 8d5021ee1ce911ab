"""``receiver`` command line: serve, check-config, sign and the tools of the other modules."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable, Sequence

from receiver import dlq_cli, healthcheck, routes_cli
from receiver.config import ConfigError, SigningRule, load_settings
from receiver.console import cli as console_cli
from receiver.contract import cli as contract_cli
from receiver.file_access import AccessError
from receiver.metastudio import cli as jobs_cli
from receiver.redaction import redact_url
from receiver.signatures import SECRET_HEADER, TIME_HEADER, hex_time, sign
from receiver.simulator import cli as simulator_cli

Command = Callable[[argparse.Namespace], int]


def _add_config_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", "-c", default=None, help="TOML file (default: $RECEIVER_CONFIG or built-in)"
    )


def _check_config(args: argparse.Namespace) -> int:
    try:
        settings = load_settings(args.config)
    except ConfigError as error:
        print(f"config error: {error}", file=sys.stderr)
        return 2
    token_params = [settings.auth.url_token_param] if settings.auth.url_token_param else []
    callback_url = redact_url(settings.server.callback_url, secret_params=token_params)
    print(
        f"config ok: callback {callback_url} "
        f"auth {','.join(t.value for t in settings.auth.type)}, "
        f"intake {settings.intake.backend}, sinks {[s.name for s in settings.sinks]}"
    )
    return 0


def _check(args: argparse.Namespace) -> int:
    from receiver.checks import run_checks

    try:
        settings = load_settings(args.config)
    except ConfigError as error:
        print(f"config error: {error}", file=sys.stderr)
        return 2
    print("ok   configuration")

    def report(what: str, ok: bool | None, detail: str) -> None:
        status = "WARN" if ok is None else "ok  " if ok else "FAIL"
        print(f"{status} {what}: {detail}")

    return 0 if asyncio.run(run_checks(settings, report, args.wait)) else 1


def _sign(args: argparse.Namespace) -> int:
    when = args.time or hex_time(time.time())
    rule = SigningRule(args.rule)
    secret = sign(args.key, args.url, when, rule)
    separator = "&" if "?" in args.url else "?"
    print(f"MSS_A URL:       {args.url}{separator}hwSecret={secret}&hwTime={when}")
    print("MSS_A_HEAD headers:")
    print(f"  {SECRET_HEADER}: {secret}")
    print(f"  {TIME_HEADER}: {when}")
    return 0


def _serve(args: argparse.Namespace) -> int:
    from receiver.server import serve

    try:
        settings = load_settings(args.config)
    except ConfigError as error:
        print(f"config error: {error}", file=sys.stderr)
        return 2
    try:
        return serve(settings, dev_tls=args.dev_tls)
    except AccessError as error:  # e.g. no writable directory for the --dev-tls certificate
        print(f"start-up failed: {error}", file=sys.stderr)
        return 1


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every ``receiver`` subcommand."""
    parser = argparse.ArgumentParser(prog="receiver", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the callback receiver")
    _add_config_flag(serve)
    serve.add_argument(
        "--dev-tls", action="store_true", help="serve HTTPS with a self-signed certificate"
    )
    serve.set_defaults(func=_serve)

    check = commands.add_parser("check-config", help="validate the configuration and exit")
    _add_config_flag(check)
    check.set_defaults(func=_check_config)

    checker = commands.add_parser(
        "check", help="check the config, that every sink is reachable and one MetaStudio call"
    )
    _add_config_flag(checker)
    checker.add_argument("--wait", type=float, default=5.0, help="seconds to wait per sink")
    checker.set_defaults(func=_check)

    signer = commands.add_parser("sign", help="print a signed MSS_A URL and MSS_A_HEAD headers")
    signer.add_argument("--key", required=True, help="the callback key registered at MetaStudio")
    signer.add_argument("--url", required=True, help="the callback URL as registered")
    signer.add_argument("--time", help="hex Unix seconds (default: now)")
    signer.add_argument(
        "--rule", default=SigningRule.HOST_PATH_QUERY.value, choices=[r.value for r in SigningRule]
    )
    signer.set_defaults(func=_sign)

    healthcheck.register(commands)
    jobs_cli.register(commands)
    simulator_cli.register(commands)
    dlq_cli.register(commands)
    routes_cli.register(commands)
    contract_cli.register(commands)
    console_cli.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``receiver`` console script."""
    args = build_parser().parse_args(argv)
    func: Command = args.func
    return func(args)


if __name__ == "__main__":
    sys.exit(main())
