"""Destinations for envelopes, one module each behind :class:`Sink`."""

from receiver.sinks.base import DeliveryError, Sink
from receiver.sinks.factory import build_sink

__all__ = ["DeliveryError", "Sink", "build_sink"]
