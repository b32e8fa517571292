"""Errors users see. Each carries a one-line message that names the problem and the fix."""

from __future__ import annotations


class LapError(Exception):
    """Base of every expected error; the CLI prints it as one line, without a traceback."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class InvalidInput(LapError):
    exit_code = 2


class NotFound(LapError):
    exit_code = 3


class Conflict(LapError):
    exit_code = 4


class ConfigError(LapError):
    exit_code = 2


class StoreError(LapError):
    exit_code = 5


class InvalidTransition(LapError):
    """A state machine was asked for a move it does not allow (a bug, or a stale view)."""
