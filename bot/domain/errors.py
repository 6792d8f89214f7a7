"""Errors whose message is safe to show a Discord user as it is."""

from __future__ import annotations


class UserError(Exception):
    """A problem the user can fix; ``str(error)`` is shown to them ephemerally, verbatim."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(UserError):
    """The thing the user named does not exist (here)."""


class Forbidden(UserError):
    """The user may not do this."""
