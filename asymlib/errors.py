"""Exception types raised by asymlib. Every message names the offending file, value or name."""
from __future__ import annotations


class AsymlibError(Exception):
    """Base class of all asymlib errors."""


class UnknownNameError(AsymlibError, KeyError):
    """A registry lookup failed (unknown backbone, metric, dataset, preset, ...)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class WeightsUnavailableError(AsymlibError):
    """Requested weights (e.g. ``imagenet``) cannot be loaded on this machine."""


class CheckpointError(AsymlibError):
    """A checkpoint file is missing, corrupt or does not match the model."""


class DatasetError(AsymlibError):
    """A dataset folder, annotation file or image is missing, malformed or unreadable."""


class ImageReadError(DatasetError):
    """An image file is missing or cannot be decoded."""


class InputSizeError(AsymlibError, ValueError):
    """An input tensor is too small or has the wrong shape for a model."""


class ConfigError(AsymlibError, ValueError):
    """A configuration value is invalid."""


class RunFileError(AsymlibError):
    """A file of a run folder (``status.json``, ``config.json``, ``results.csv``...) is unreadable or malformed."""
