"""User-facing errors: each carries one message saying what was wrong and what to do."""


class QuantsurveyError(Exception):
    """Base class: the command-line entry points print the message alone and exit non-zero."""

    exit_code = 2

    def user_message(self) -> str:
        """The message alone. An error raised in a DataLoader worker comes back re-raised by
        torch with the worker's traceback in its text; its last line is our message."""
        text = str(self)
        if "Original Traceback" in text:
            last = text.strip().splitlines()[-1]
            text = last.split(f"{type(self).__name__}: ", 1)[-1]
        return text


class ConfigError(QuantsurveyError):
    """A configuration key or value is not allowed."""


class DataError(QuantsurveyError):
    """A data set is missing, incomplete or corrupt."""


class CheckpointError(QuantsurveyError):
    """A checkpoint is missing, corrupt or belongs to another model."""


class RunDirError(QuantsurveyError):
    """The run directory already holds a run that would be overwritten."""


class RunFailedError(QuantsurveyError):
    """A run stopped because its numbers went wrong (a non-finite loss or metric)."""

    exit_code = 3


class OutputError(QuantsurveyError):
    """A run's files cannot be written (disk full, read-only, no permission)."""
