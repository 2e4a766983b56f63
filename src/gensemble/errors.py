"""User-facing errors: each carries one line that names the problem and the fix."""


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
