"""What the console shows, assembled from the running service (API and pages alike)."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from receiver.events import EventType
from receiver.redaction import REDACTED, is_secret_name, redact_url

if TYPE_CHECKING:
    from receiver.service import ReceiverService

OVERVIEW_FAMILIES = (
    "receiver_callbacks",
    "receiver_signature_matches",
    "receiver_duplicate_callbacks",
    "receiver_events_delivered",
    "receiver_sink_failures",
    "receiver_dead_letters",
    "receiver_enrichment",
)


def _samples(service: ReceiverService) -> dict[str, list[dict[str, Any]]]:
    wanted = set(OVERVIEW_FAMILIES)
    found: dict[str, list[dict[str, Any]]] = {name: [] for name in OVERVIEW_FAMILIES}
    for family in service.metrics.registry.collect():
        if family.name not in wanted:
            continue
        for sample in family.samples:
            if sample.name.endswith("_total"):
                found[family.name].append({"labels": sample.labels, "value": sample.value})
    return found


async def overview(service: ReceiverService) -> dict[str, Any]:
    """Figures for the overview page: counters, intake, sinks, dead letters, rooms."""
    now = time.time()
    intake = service.intake
    console = service.console
    return {
        "time": now,
        "ready": service.ready()[0],
        "intake": {"depth": intake.depth(), "oldest_age_seconds": intake.oldest_age(now)},
        "sinks": {
            name: {"ready": sink.is_ready(), "critical": sink.critical}
            for name, sink in service.sinks.items()
        },
        "dead_letters": await service.dead_letters.count(),
        "rooms": len(console.rooms) if console else 0,
        "history": len(console.history) if console else 0,
        "counters": _samples(service),
    }


def _origin(url: str) -> str:
    """``scheme://host[:port]`` of a URL, the rest (a webhook's path may be its secret) cut."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname or "", parts.port
    except ValueError:
        return REDACTED
    netloc = f"[{host}]" if ":" in host else host
    netloc += f":{port}" if port else ""
    rest = "/" + REDACTED if (parts.path not in ("", "/") or parts.query) else ""
    return f"{parts.scheme}://{netloc}{rest}"


def _redacted(value: Any, key: str = "") -> Any:
    if isinstance(value, dict):
        return {k: _redacted(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_redacted(v, key) for v in value]
    if isinstance(value, str):
        if key and is_secret_name(key) and value:
            return REDACTED
        if key == "url" and "://" in value:  # sink and intake URLs: where, not how
            return _origin(value)
        if "://" in value:
            return redact_url(value, every_value=True)
    return value


def key_hint(key: str) -> str:
    """Which key this is, without it: the first 8 hex digits of its SHA-256."""
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()[:8]


def _keys_file_age(path: Path | None) -> float | None:
    if path is None:
        return None
    try:
        return max(0.0, time.time() - path.stat().st_mtime)
    except OSError:
        return None


def configuration(service: ReceiverService, operator: bool = True) -> dict[str, Any]:
    """The effective settings, secrets redacted, and what to register at MetaStudio: the
    callback URL, auth types, key fingerprints, the signing rules callbacks matched so far and
    the age of the key file. Key fingerprints are an operator's only (they would let a
    viewer test guesses of a weak key offline)."""
    settings = service.settings
    dumped = settings.model_dump(mode="json")
    auth = settings.auth
    rules_seen = {
        f"{s['labels']['auth_type']} {s['labels']['rule']}": int(s["value"])
        for s in _samples(service)["receiver_signature_matches"]
    }
    return {
        "signing_rules_seen": rules_seen,
        "keys_file_age_seconds": _keys_file_age(auth.keys_file),
        "register": {
            "live_event_type_callback_url": redact_url(settings.server.callback_url, True),
            "auth_types": [str(t) for t in auth.type],
            "key_hints": [key_hint(k) for k in service.keys.keys] if operator else [],
            "event_types": [str(t) for t in EventType],
        },
        "settings": _redacted(dumped),
    }
