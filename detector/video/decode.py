"""Decoding and sampling a video with OpenCV, one frame in memory at a time.

Frames are read in order (`grab` every frame, `retrieve` only the sampled ones): seeking by frame
number is exact for some codecs and not for others, reading in order is exact for all. A sample is
taken at each multiple of `every_s`, from the first frame whose time is at or past it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from detector.data.folders import file_sha256  # noqa: F401 - the video's content hash, re-exported
from detector.errors import DetectorError
from detector.options import OptionError, check_fields, option

VIDEO_EXTENSIONS = frozenset({".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".flv"})

#: Default sampling step of `detect scan` on a video, seconds.
DEFAULT_EVERY_S = 1.0


class VideoError(DetectorError):
    """A video that cannot be opened or sampled; the message is one line for an error record."""


def is_video_path(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_EXTENSIONS


@dataclass(frozen=True)
class Sampling:
    """Which frames of a video are scanned: one every `every_s` seconds, at most `max_frames`.

    Example:
        >>> Sampling(every_s=0.5, max_frames=10).every_s
        0.5
    """

    every_s: float = DEFAULT_EVERY_S
    max_frames: int | None = None


@dataclass(frozen=True)
class VideoOptions:
    """How videos are sampled, as users say it: `every` seconds or `fps` frames a second (not both).

    Example:
        >>> VideoOptions(fps=2.0, max_frames=10).sampling()
        Sampling(every_s=0.5, max_frames=10)
    """

    every: float | None = option(
        None, "Videos: scan one frame every this many seconds (default 1).", range=(0.001, 86400)
    )
    fps: float | None = option(
        None, "Videos: scan this many frames per second (instead of every).", range=(0.001, 1000)
    )
    max_frames: int | None = option(None, "Videos: scan at most this many frames of each.", range=(1, 10**7))

    def __post_init__(self) -> None:
        check_fields(self)
        if self.every is not None and self.fps is not None:
            raise OptionError("every", "and fps cannot both be given: one frame every SECONDS, or F frames a second")

    def sampling(self) -> Sampling:
        every = 1.0 / self.fps if self.fps is not None else (DEFAULT_EVERY_S if self.every is None else self.every)
        return Sampling(float(every), self.max_frames)


@dataclass(frozen=True)
class VideoInfo:
    fps: float
    frame_count: int  # as the container says (0 when it does not)
    width: int
    height: int

    @property
    def duration_s(self) -> float:
        return self.frame_count / self.fps if self.frame_count > 0 else 0.0


@dataclass(frozen=True)
class Frame:
    index: int
    time_s: float
    pixels: np.ndarray  # HxWx3 RGB uint8


def open_video(path: Path, max_pixels: int | None = None) -> tuple[cv2.VideoCapture, VideoInfo]:
    """An opened capture and what the container says; VideoError (one line) when it is not a video."""
    if not path.is_file():
        raise VideoError("not a file" if path.exists() else "no such file")
    if path.stat().st_size == 0:
        raise VideoError("empty file")
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise VideoError("cannot be decoded as a video (OpenCV/FFmpeg could not open it)")
    fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
    info = VideoInfo(
        fps=fps,
        frame_count=max(0, int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)),
        width=int(cap.get(cv2.CAP_PROP_FRAME_WIDTH) or 0),
        height=int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0),
    )
    if not (math.isfinite(fps) and 0 < fps <= 1000):
        cap.release()
        raise VideoError(f"the video does not give a usable frame rate ({fps})")
    if max_pixels is not None and info.width * info.height > max_pixels:
        cap.release()
        raise VideoError(f"frames of {info.width}x{info.height} are over the pixel limit {max_pixels}")
    return cap, info


def sample_frames(cap: cv2.VideoCapture, info: VideoInfo, sampling: Sampling) -> Iterator[Frame]:
    """The sampled frames in order (time = index / fps); stops at the end or at max_frames."""
    index, taken, next_t = 0, 0, 0.0
    eps = 0.5 / info.fps  # a frame within half a frame of the sample time is that sample's frame
    while sampling.max_frames is None or taken < sampling.max_frames:
        if not cap.grab():
            return
        t = index / info.fps
        if t + eps >= next_t:
            ok, bgr = cap.retrieve()
            if ok and bgr is not None:
                yield Frame(index, t, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
                taken += 1
            while next_t <= t + eps:
                next_t += sampling.every_s
        index += 1
