"""Replaying one dead letter from the console through the running service's sinks."""

from __future__ import annotations

from typing import TYPE_CHECKING

import orjson

from receiver.pipeline.work import UNROUTED
from receiver.routing import Router
from receiver.sinks import DeliveryError

if TYPE_CHECKING:
    from receiver.deadletters.base import DeadLetter
    from receiver.service import ReceiverService


async def replay_letter(service: ReceiverService, letter: DeadLetter) -> str:
    """Publish the letter again and remove it once delivered; "" or why it was kept.

    The letter is removed only after every sink confirmed, so a failure keeps it; removal
    is the claim, so a letter replayed twice at once is at worst delivered twice (sinks
    and consumers drop repeats by event id), never lost.
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
    for name in targets:
        sink = service.sinks.get(name)
        if sink is None:
            return f"no sink named {name!r} in the configuration"
        try:
            await sink.publish(envelope, letter.body)
        except DeliveryError as error:
            return f"{name}: {error.detail}"
        except Exception as error:  # a sink bug: the letter stays
            return f"{name}: {type(error).__name__}"
    await service.dead_letters.remove(letter.id)
    return ""
