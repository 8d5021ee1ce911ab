"""Replaying one dead letter from the console through the running service's sinks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from receiver.pipeline.work import UNROUTED
from receiver.routing import Router
from receiver.sinks import DeliveryError

if TYPE_CHECKING:
    from receiver.deadletters.base import DeadLetter
    from receiver.service import ReceiverService


async def replay_letter(service: ReceiverService, letter: DeadLetter) -> str:
    """Publish the letter again and remove it once delivered; "" or why it was kept.

    The letter is claimed first (as ``receiver dlq replay`` does), so two replays at once,
    from any replica or the CLI, publish it once; it is removed only after every sink
    confirmed, and a failure releases the claim and keeps it.
    """
    try:
        envelope = orjson.loads(letter.body)
    except orjson.JSONDecodeError:
        return "the letter is not an event envelope"
    if not isinstance(envelope, dict):
        return "the letter is not an event envelope"
    if letter.sink == UNROUTED:
        targets = Router(service.settings.routes).sinks_for(envelope)
        if not targets:
            return "no route matches it"
    else:
        targets = [letter.sink]
    store = service.dead_letters
    if not await store.claim(letter.id):
        return "another replay holds it, or it is gone"
    failure = await _publish(service, targets, envelope, letter.body)
    if failure:
        await store.release(letter.id)
        return failure
    await store.remove(letter.id)
    return ""


async def _publish(
    service: ReceiverService, targets: list[str], envelope: dict[str, Any], body: bytes
) -> str:
    for name in targets:
        sink = service.sinks.get(name)
        if sink is None:
            return f"no sink named {name!r} in the configuration"
        try:
            await sink.publish(envelope, body)
        except DeliveryError as error:
            return f"{name}: {error.detail}"
        except Exception as error:  # a sink bug: the letter stays
            return f"{name}: {type(error).__name__}"
    return ""
