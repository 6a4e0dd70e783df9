"""Joining a brand's sightings in sampled frames into appearances on screen.

A sampled frame at time t stands for [t, t + step): an appearance starts at its first sighting and
ends one step after its last. Sightings closer than `gap_s` (default: two steps, so one missed
sample does not split an appearance) are one appearance. Works as a stream: frames in time order,
one open appearance per brand in memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from detector.results.record import SCAN_SCHEMA, path_fields


@dataclass
class Appearance:
    label: str
    start_s: float
    end_s: float
    peak_prominence: float
    frames: int
    last_seen_s: float = field(default=0.0, repr=False)

    @property
    def duration_s(self) -> float:
        return max(0.0, self.end_s - self.start_s)

    def as_record(self, path: str) -> dict[str, Any]:
        return {
            "schema": SCAN_SCHEMA,
            "record": "appearance",
            **path_fields(path),
            "label": self.label,
            "start_s": round(self.start_s, 3),
            "end_s": round(self.end_s, 3),
            "duration_s": round(self.duration_s, 3),
            "peak_prominence": round(self.peak_prominence, 4),
            "frames": self.frames,
        }


class AppearanceJoiner:
    """Feed sampled frames in time order; `finish` gives every brand's appearances.

    Example:
        >>> j = AppearanceJoiner(step_s=0.5)
        >>> for t in (2.0, 2.5, 3.0, 4.0, 4.5):  # 3.5 missed: within the gap tolerance
        ...     j.add(t, {"acme": 0.4})
        >>> [(a.start_s, a.end_s) for a in j.finish(10.0)]
        [(2.0, 5.0)]
    """

    def __init__(self, step_s: float, gap_s: float | None = None) -> None:
        self.step_s = float(step_s)
        self.gap_s = 2 * self.step_s if gap_s is None else float(gap_s)
        self.open: dict[str, Appearance] = {}
        self.closed: list[Appearance] = []

    def add(self, time_s: float, present: dict[str, float]) -> None:
        """One sampled frame: the brands seen in it and their best prominence there."""
        for label in [lb for lb, a in self.open.items() if time_s - a.last_seen_s > self.gap_s]:
            self.closed.append(self.open.pop(label))
        for label, prom in present.items():
            a = self.open.get(label)
            if a is None:
                self.open[label] = Appearance(label, time_s, time_s + self.step_s, prom, 1, time_s)
            else:
                a.end_s, a.last_seen_s = time_s + self.step_s, time_s
                a.peak_prominence = max(a.peak_prominence, prom)
                a.frames += 1

    def finish(self, duration_s: float | None = None) -> list[Appearance]:
        """Close every open appearance (ends capped at the video's duration), sorted by start."""
        self.closed += self.open.values()
        self.open = {}
        if duration_s:
            for a in self.closed:
                a.end_s = min(a.end_s, max(duration_s, a.start_s))
        return sorted(self.closed, key=lambda a: (a.start_s, a.label))


def sightings(record: dict[str, Any]) -> dict[str, float]:
    """{brand: best prominence} of one frame record: the brands with a box in it.

    A brand is on screen where the scanner can say where: a verdict without a box (windows over the
    image threshold whose maps gave no box) is no sighting. Measured on the test clip: the frames
    without the logo that passed the verdict had no box, the frames with it all had one."""
    seen: dict[str, float] = {}
    labels = set(record.get("labels") or [])
    for box, exp in zip(record.get("boxes") or [], record.get("exposure") or [], strict=False):
        if box.get("label") in labels:
            seen[box["label"]] = max(seen.get(box["label"], 0.0), float(exp.get("prominence") or 0.0))
    return seen
