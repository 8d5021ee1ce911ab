"""Run the receiver under uvicorn: HTTP/1.1 with httptools (callbacks served by
:mod:`receiver.protocol`), uvloop where installed."""

from __future__ import annotations

import gc
import logging
import signal
import sys
from pathlib import Path

import uvicorn

from receiver.app import ReceiverApp
from receiver.config import Settings
from receiver.logs import configure_logging
from receiver.protocol import callback_protocol
from receiver.tls import write_dev_certificate

log = logging.getLogger("receiver.server")


def uvicorn_config(
    settings: Settings, app: ReceiverApp, *, dev_tls: bool = False
) -> uvicorn.Config:
    """The uvicorn configuration for these settings."""
    server = settings.server
    certfile, keyfile = server.tls_certfile, server.tls_keyfile
    if dev_tls and certfile is None:
        certfile, keyfile = write_dev_certificate(
            Path(settings.intake.path).parent / "dev-tls", server.host
        )
        log.warning("serving HTTPS with a self-signed certificate", extra={"cert": str(certfile)})
    protocol = callback_protocol(app.service.callbacks, server.path, server.trusted_proxies)
    return uvicorn.Config(
        app,
        http=protocol,
        host=server.host,
        port=server.port,
        ssl_certfile=str(certfile) if certfile else None,
        ssl_keyfile=str(keyfile) if keyfile else None,
        proxy_headers=True,
        forwarded_allow_ips=server.trusted_proxies,
        access_log=False,
        log_config=None,
        lifespan="on",
        timeout_graceful_shutdown=int(server.graceful_shutdown_seconds) or None,
        server_header=False,
    )


def tune_interpreter() -> None:
    """Size the garbage collector and the GIL's switch interval for this server.

    The collector's default (a collection every 700 net allocations) runs hundreds of
    times a second under load, promoting the events in flight to the old generation,
    whose full collections then stall the event loop for tens of milliseconds (ingest
    benchmark: p99 33 ms with the defaults, 11 ms with these). What start-up allocated is
    frozen out of collections; requests make few reference cycles.

    The worker threads only wait on the disk (fdatasync), then hand a result back. A
    thread that wants the GIL forces the busy event loop to hand it over after the switch
    interval; with the default 5 ms that forced switch costs the loop more than the
    thread's few microseconds of work, while the thread usually gets the GIL sooner, in
    a gap between the loop's callbacks (ingest benchmark: about 5 % less CPU a request).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    sys.setswitchinterval(0.05)


def serve(settings: Settings, *, dev_tls: bool = False) -> int:
    """Serve until SIGINT/SIGTERM; 0 after a clean shutdown, 1 if start-up failed."""
    configure_logging(settings.logging.level, settings.logging.format)
    app = ReceiverApp(settings)
    if settings.auth.allow_unauthenticated:
        log.warning("auth.allow_unauthenticated is on: any caller can post events")
    server = uvicorn.Server(uvicorn_config(settings, app, dev_tls=dev_tls))
    # uvicorn re-raises the signal that stopped it, once its handlers are gone: these make
    # that a no-op, so a graceful shutdown on SIGTERM exits 0 as orchestrators expect.
    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop_signal, lambda *_: None)
    tune_interpreter()
    server.run()
    return 0 if server.started else 1
