"""One video through a Detector: each sampled frame scanned like a photo, then its appearances.

Records, in order: one scan record per sampled frame (`path` the video's, `frame`, `time_s`,
`sha256` the video file's hash, `exposure` per box), then one `appearance` record per appearance of
a brand, then one `video` record that closes the video (duration, frame rate, samples). With
`--resume`, frames already in the results (same video hash) are not scanned again but still count
for the appearances, and a video with its closing record is skipped whole.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from detector.errors import DetectorError
from detector.report.exposure import add_exposure, image_thresholds
from detector.results.record import SCAN_SCHEMA, ScanResult, path_fields
from detector.video.appearances import AppearanceJoiner, sightings
from detector.video.decode import Sampling, file_sha256, open_video, sample_frames

if TYPE_CHECKING:  # the detector is passed in; importing the pipeline here would slow the CLI's start
    from detector.api import Detector


@dataclass
class VideoStats:
    frames_scanned: int = 0
    frames_reused: int = 0
    appearances: int = 0
    error: str = ""


def video_record(path: str, sha256: str, fps: float, duration_s: float, sampling: Sampling, samples: int) -> dict:
    return {
        "schema": SCAN_SCHEMA,
        "record": "video",
        **path_fields(path),
        "sha256": sha256,
        "fps": round(fps, 3),
        "duration_s": round(duration_s, 3),
        "every_s": round(sampling.every_s, 4),
        "samples": samples,
    }


def scan_video(
    detector: Detector,
    path: Path,
    sampling: Sampling,
    on_result: Callable[[ScanResult, Any], None],
    on_record: Callable[[dict[str, Any]], None],
    done_frames: dict[int, dict[str, Any]] | None = None,
) -> VideoStats:
    """Scan the sampled frames of `path`; a video that cannot be read is one error record.

    Example:
        >>> writer = ScanWriter(OutputOptions(format="jsonl", output="out.jsonl"), det.meta)  # doctest: +SKIP
        >>> stats = scan_video(det, Path("clip.mp4"), Sampling(0.5), writer.add, writer.add_record)  # doctest: +SKIP
    """
    stats = VideoStats()
    sha = ""
    try:
        cap, info = open_video(path, detector.max_pixels)
        sha = file_sha256(path)
    except (DetectorError, OSError) as e:
        stats.error = str(e) if isinstance(e, DetectorError) else f"cannot read the file: {e.strerror or e}"
        if not sha and path.is_file():
            try:
                sha = file_sha256(path)  # so that --resume does not write the same error record again
            except OSError:
                pass
        r = detector.error_result(str(path), stats.error)
        r.sha256 = sha
        on_result(r, None)
        return stats
    reuse = {i: r for i, r in (done_frames or {}).items() if r.get("sha256") == sha and not r.get("errors")}
    joiner = AppearanceJoiner(sampling.every_s)
    thresholds = image_thresholds(detector.meta)
    last_t, samples = 0.0, 0
    try:
        for frame in sample_frames(cap, info, sampling):
            samples, last_t = samples + 1, frame.time_s
            if frame.index in reuse:
                joiner.add(frame.time_s, sightings(reuse[frame.index]))
                stats.frames_reused += 1
                continue
            r = _scan_frame(detector, path, frame.pixels, sha, thresholds)
            r.frame, r.time_s = frame.index, frame.time_s
            joiner.add(frame.time_s, sightings(r.as_dict()) if not r.errors else {})
            on_result(r, frame.pixels)
            stats.frames_scanned += 1
    finally:
        cap.release()
    whole = info.duration_s or (last_t + 1.0 / info.fps)
    # What the samples cover: the whole video, or up to one step past the last sample when
    # --max-frames stopped early (screen shares are over what was looked at).
    stopped = sampling.max_frames is not None and samples >= sampling.max_frames
    covered = min(whole, last_t + sampling.every_s) if stopped else whole
    for a in joiner.finish(covered):
        on_record(a.as_record(str(path)))
        stats.appearances += 1
    rec = video_record(str(path), sha, info.fps, covered, sampling, samples)
    on_record(rec | {"video_duration_s": round(whole, 3)})
    return stats


def _scan_frame(detector: Detector, path: Path, pixels: Any, sha: str, thresholds: dict[str, float]) -> ScanResult:
    try:
        r = detector.scan(pixels)
    except DetectorError as e:  # over the work budget: this frame's record says why, the video goes on
        r = detector.error_result(str(path), str(e))
    except Exception as e:  # a bug must not cost the other frames their results
        r = detector.error_result(str(path), f"internal error: {e.__class__.__name__}: {e}")
    r.path, r.sha256 = str(path), sha
    return add_exposure(r, pixels, thresholds)
