"""The operator console: an admin listener with a JSON API and pages for live rooms,
events and dead letters, apart from the public callback port."""

from receiver.console.settings import AdminSettings

__all__ = ["AdminSettings"]
