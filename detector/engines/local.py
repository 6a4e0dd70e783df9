"""The local engine: this process decodes in a thread pool and scans one image at a time."""

from __future__ import annotations

import sys
from typing import Any

from rich.console import Console

from detector.api import Detector
from detector.engines import ScanJob
from detector.errors import DetectorError
from detector.results.folders import BatchSummary, list_images, scan_many
from detector.results.writer import ScanWriter


def run_local(job: ScanJob, console: Any = None) -> BatchSummary:
    """Load the model once, list the inputs, stream every record to the writer; the summary."""
    console = console or Console()
    det = Detector.load(job.source.model, job.source.backend, job.options, job.limits)
    paths = list_images(job.inputs, job.folders.glob)
    if not paths:
        raise DetectorError("no images or videos found in the given paths")
    writer = ScanWriter(job.output, det.meta, job.inputs, console, single=len(paths) == 1)
    if writer.repaired:  # one plain line on stderr (not wrapped: logs and tests read it)
        print(f"{job.output.output}: cut a torn last line ({writer.repaired} bytes) before appending", file=sys.stderr)
    summary = scan_many(
        det,
        paths,
        writer.add,
        resume_from=job.output.output_path if job.output.resume else None,
        workers=job.folders.workers,
        progress=len(paths) > 1,
        sampling=job.video.sampling(),
        on_record=writer.add_record,
    )
    writer.close()  # only a finished scan writes its document (json, csv, coco)
    return summary
