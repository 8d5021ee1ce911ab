"""Destinations for envelopes, one module each behind :class:`Sink`."""

from receiver.sinks.base import DeliveryError, InvalidDestination, Sink
from receiver.sinks.factory import build_sink

__all__ = ["DeliveryError", "InvalidDestination", "Sink", "build_sink"]
