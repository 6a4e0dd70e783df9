"""Errors a user can act on: each carries a one-line message that says what to do."""

from __future__ import annotations


class DetectorError(Exception):
    """Base class: the CLI prints the message on one line, without a traceback."""


class ImageLoadError(DetectorError):
    """A file that cannot be turned into pixels; `reason` is short enough for a report column.

    `kind` is for programs (the server maps it to HTTP statuses): missing, empty, not_a_file,
    unreadable, too_large, too_many_pixels, not_an_image or undecodable. `sha256` is the content hash
    when the file was read before it failed ("" when it was refused unread).
    """

    def __init__(self, path: str, reason: str, kind: str = "undecodable", sha256: str = "") -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason
        self.kind = kind
        self.sha256 = sha256


class WeightsError(DetectorError):
    """Backbone weights could not be had (no network, a bad file)."""


class ModelDirError(DetectorError):
    """A model directory that is missing, damaged or not ours."""


class DatasetError(DetectorError):
    """A dataset folder the trainer cannot use as it is."""
