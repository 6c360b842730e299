"""Exceptions raised by routing_gym; each message names what was wrong."""

from __future__ import annotations


class RoutingGymError(Exception):
    """Base class of every error routing_gym raises on purpose."""


class DataFormatError(RoutingGymError, ValueError):
    """A data file is missing, malformed or has a bad field.

    The message always names the file and, where known, the line and the field.
    """

    def __init__(self, path, message: str, line: int | None = None, field: str | None = None):
        self.path = str(path)
        self.line = line
        self.field = field
        where = self.path
        if line is not None:
            where += f", line {line}"
        if field is not None:
            where += f", field {field!r}"
        super().__init__(f"{where}: {message}")


class CacheError(RoutingGymError):
    """The response cache file is corrupt, foreign or unusable."""


class UnknownModelError(RoutingGymError, KeyError):
    """A model name is not in the pool or the built-in registry."""

    def __str__(self) -> str:  # KeyError would otherwise quote the whole message
        return str(self.args[0]) if self.args else ""


class BackendError(RoutingGymError):
    """A backend could not load a model or serve a request."""


class CheckpointError(RoutingGymError, ValueError):
    """A saved agent is missing, truncated, or of another kind than the loader reads."""


class UsageError(SystemExit):
    """A bad flag, flag value or config file: the command line prints the message and exits 2."""

    def __init__(self, message: str):
        super().__init__(2)
        self.message = message

    def __str__(self) -> str:
        return self.message
