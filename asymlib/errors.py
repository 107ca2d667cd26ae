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


class InputError(AsymlibError, ValueError):
    """An input tensor breaks a model's or metric's input contract (for metrics: a floating-point ``(B, 3, H, W)``
    tensor, finite, in ``[0, 1]`` within a tolerance, on the metric's device; see :mod:`asymlib.inputcheck`).

    ``cause`` classifies the violation (``"type"``, ``"dtype"``, ``"shape"``, ``"size"``, ``"device"``,
    ``"non-finite"``, ``"range"``) and ``argument`` names the offending argument (e.g. ``"distorted"``), so that a
    caller can react to one kind (the SR trainer records a non-finite generator output as a collapse).
    """

    cause: str | None = None

    def __init__(self, message: str, *, cause: str | None = None, argument: str | None = None):
        super().__init__(message)
        if cause is not None:
            self.cause = cause
        self.argument = argument


class InputSizeError(InputError):
    """An input tensor is too small or has the wrong shape for a model."""

    cause = "size"


class ConfigError(AsymlibError, ValueError):
    """A configuration value is invalid."""


class RunFileError(AsymlibError):
    """A file of a run folder (``status.json``, ``config.json``, ``results.csv``...) is unreadable or malformed."""


class DiskFullError(AsymlibError, OSError):
    """A write failed for lack of space (``ENOSPC``); the message names the target file. Nothing half-written is
    left at the target (its previous content, if any, is kept). ``errno`` is ``ENOSPC``, ``filename`` the target."""

    def __str__(self) -> str:  # OSError would print "[Errno 28] None: '<filename>'" once errno is set
        return str(self.args[0]) if self.args else ""
