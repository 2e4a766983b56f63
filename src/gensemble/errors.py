"""User-facing errors: each carries one line that names the problem and the fix."""

import reprlib


class GensembleError(Exception):
    """Base class for errors caused by bad input. The CLI prints them as one line, no traceback."""


class ConfigError(GensembleError):
    """A config key, value or type is wrong."""


class UnknownNameError(GensembleError):
    """A registry was asked for a name it does not hold."""


class DataError(GensembleError):
    """Dataset files are missing, unreadable or of the wrong shape."""


class CheckpointError(GensembleError):
    """A checkpoint is missing, truncated, or belongs to a different run."""


_REPR = reprlib.Repr()  # Python 3.11's Repr takes no keyword arguments
_REPR.maxlevel, _REPR.maxdict, _REPR.maxlist, _REPR.maxtuple, _REPR.maxset = 3, 4, 4, 4, 4
_REPR.maxstring, _REPR.maxother, _REPR.maxlong = 50, 50, 40


def shown(value: object, limit: int = 60) -> str:
    """A value as it may appear in a one-line message: repr'd (so newlines and ANSI escapes are
    escaped, never echoed raw) and bounded. reprlib never expands more than a few items a level,
    so a value built from YAML aliases (a 1 KB file can describe gigabytes) costs nothing to show."""
    try:
        text = _REPR.repr(value)
    except (RecursionError, MemoryError, ValueError):
        return f"<{type(value).__name__} too large to show>"
    return text if len(text) <= limit else text[: limit - 5] + "…" + text[-4:]


def shown_key(key: object, limit: int = 40) -> str:
    """A config key for a message: plain when it is short and printable, else escaped like `shown`."""
    if isinstance(key, str) and key.isprintable() and len(key) <= limit:
        return key
    return shown(key, limit)
