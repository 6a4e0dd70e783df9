"""Engines: where the images of a scan job are scanned (this process, or a cluster), never how.

Every engine runs the library's own pipeline (`Detector.scan_loaded`) and gives the same records: one
per input, results or an error record, written through `ScanWriter`. `ENGINES` is the one table of
plugs; the CLI's `--engine` picks one by name.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path

from detector.backends import ModelSource
from detector.errors import DetectorError
from detector.images import ImageLimits
from detector.options import check_fields, option
from detector.pipeline.options import ScanOptions
from detector.results.folders import BatchSummary, FolderOptions
from detector.results.writer import OutputOptions
from detector.video.decode import VideoOptions

#: engine name -> "module:function"; each function takes (ScanJob, console) and returns a BatchSummary.
ENGINES = {"local": "detector.engines.local:run_local", "ray": "detector.engines.ray_engine:run_ray"}


@dataclass(frozen=True)
class EngineOptions:
    """Which engine scans a job."""

    engine: str = option(
        "local", "Where images are scanned: local (this process) or ray (a Ray cluster).", choices=tuple(ENGINES)
    )

    def __post_init__(self) -> None:
        check_fields(self)


@dataclass(frozen=True)
class ScanJob:
    """Everything one `detect scan` asks for: inputs, model, how to scan, where the records go."""

    inputs: list[Path]
    source: ModelSource = field(default_factory=ModelSource)
    options: ScanOptions = field(default_factory=ScanOptions)
    limits: ImageLimits = field(default_factory=ImageLimits)
    folders: FolderOptions = field(default_factory=FolderOptions)
    output: OutputOptions = field(default_factory=OutputOptions)
    video: VideoOptions = field(default_factory=VideoOptions)
    engine_options: object | None = None  # the chosen engine's own settings (RayOptions for ray), or its defaults


def run_job(job: ScanJob, engine: EngineOptions | None = None, console: object | None = None) -> BatchSummary:
    """Scan a job with the chosen engine; the summary of what was scanned.

    Example:
        >>> job = ScanJob([Path("photos")], ModelSource("demo-output/model.onnx"),
        ...               output=OutputOptions(format="jsonl", output="results.jsonl"))
        >>> summary = run_job(job)  # doctest: +SKIP
        >>> summary.images, summary.errors  # doctest: +SKIP
        (120, 0)
    """
    name = (engine or EngineOptions()).engine
    module, func = ENGINES[name].split(":")
    try:
        run = getattr(importlib.import_module(module), func)
    except ImportError as e:
        raise DetectorError(f"the {name} engine is not available here: {e}") from None
    return run(job, console)
