"""The error types the library raises; the CLI turns each into one line and an exit code."""

from __future__ import annotations


class I2IError(Exception):
    """A problem the user can fix: the message names the file or option and the fix.

    The CLI prints it as one line and exits with `exit_code` (2: bad input or usage, 1: partial failure).
    """

    exit_code = 2


class BadImageError(I2IError):
    """An image file that cannot be decoded (or is refused, e.g. past the pixel limit)."""

    def __init__(self, path: object, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")


class DataError(I2IError):
    """A dataset folder that is missing, empty or in no known layout."""


class ConfigError(I2IError):
    """An option, config file or --set value that is unknown or does not fit."""


class CheckpointError(I2IError):
    """A run directory or checkpoint that is missing, from another method or version, or corrupt."""


class WeightsError(I2IError):
    """Pretrained weights that are missing (offline), fail their hash, or cannot be loaded."""


class TrainingDiverged(I2IError):
    """A loss or weight became NaN/inf; the last good checkpoint is kept."""

    exit_code = 1
