"""The Ray engine: the images of a scan job are scanned by actors of a Ray cluster, the records written here.

It decides where images are scanned, never how. Each actor (a callable class for Ray Data's
`map_batches`, the documented batch-inference recipe) opens the model once and, per input, does what
the local engine does: `load_image` in a decoding thread ahead of the model (decoding and model calls
overlap), then `Detector.scan_loaded` or `error_result` (detector.results.folders). The records travel
back to this process (the driver), which writes them through the same `ScanWriter` in the order they
come, so a record is the same whichever engine made it.

Guarantees (README, "Scale-out (Ray)"):
- every input gets exactly one record: the driver drops a second copy of an input's record (a retried
  batch whose first attempt had sent some back), and gives an input that no attempt could scan (its
  actor died every time) an error record that says so, which `--resume` tries again;
- a killed actor is restarted (`max_restarts`) and its batch retried (`max_task_retries`);
- `--resume` skips what the JSONL output holds: the actors compare each file's hash (or refusal) with
  its record, as the local engine does, so the hashing is spread over the cluster too;
- videos (local files) are scanned on the driver afterwards, with the local engine's code; a video
  behind a URI gets an error record (copy it to a local path).

Ray is imported only when a scan runs: without it, `--engine ray` says how to install it.
"""

from __future__ import annotations

import logging
import math
import os
import pickle
import re
import socket
import sys
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from detector.api import Detector, default_model_path
from detector.backends import backend_for
from detector.engines import ScanJob
from detector.engines.ray_options import RayOptions
from detector.engines.ray_sources import Item, Listing, as_uri, fetch, list_sources, open_uri, spool_name
from detector.errors import DetectorError
from detector.images import ImageLimits
from detector.pipeline.options import ScanOptions
from detector.report.exposure import image_thresholds
from detector.results.folders import BatchSummary, Done, already_done, done_in_jsonl, iter_loaded, scan_many, scan_one
from detector.results.record import ScanResult, path_bytes
from detector.results.writer import ScanWriter

INSTALL_HINT = "the ray engine needs Ray: pip install 'logo-detector[ray]'"
#: Retries of one batch whose actor died (then its inputs get an error record); actors restart always.
MAX_TASK_RETRIES = 3
#: Inputs are cut into at most about this many blocks (a block is what a retry scans again).
MAX_BLOCKS = 4096


def import_ray() -> Any:
    """Ray, or the one-line error that says how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401  (the extra's other half)
    except ImportError:
        raise DetectorError(INSTALL_HINT) from None
    return ray


@dataclass(frozen=True)
class ActorSetup:
    """What every actor needs to open the model and read inputs (sent once per actor).

    `model_blob` holds the ONNX file's bytes in the object store (a one-element list, so Ray passes
    the reference itself), for clusters whose nodes do not share the driver's disk; a Keras model
    directory is opened at `model_path` on every node."""

    model_path: str
    backend: str
    options: ScanOptions
    limits: ImageLimits
    roots: tuple[str, ...]
    workers: int
    threads: int
    model_blob: list | None = None
    model_sha256: str = ""


class ScanActor:
    """One Ray actor: the model, opened once; each call scans a batch of inputs and returns their
    pickled `ScanResult`s (b"" for an input `--resume` skips)."""

    def __init__(self, setup: ActorSetup) -> None:
        self.setup = setup
        self.det = open_detector(setup)
        self.thresholds = image_thresholds(self.det.meta)
        self.spool = Path(tempfile.mkdtemp(prefix="logo-detector-spool-"))
        self.filesystems: dict[int, tuple[Any, str]] = {}

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        rows = [_Row.of(batch, k) for k in range(len(batch["index"]))]
        blobs = [b""] * len(rows)
        todo: list[tuple[int, str, Path]] = []
        try:
            for k, row in enumerate(rows):
                path, err = self._locate(row)
                if err:
                    if not (row.done and row.done_error == err):
                        blobs[k] = pickle.dumps(self.det.error_result(row.item.name, err))
                elif not (row.done and already_done(path, row.done_record(), self.det.max_file_bytes)):
                    todo.append((k, row.item.name, path))
            loaded = iter_loaded(
                [p for _, _, p in todo],
                self.det.max_pixels,
                self.setup.workers,
                max_file_bytes=self.det.max_file_bytes,
            )
            for (k, name, _), (p, img, sha, err) in zip(todo, loaded, strict=True):
                r = scan_one(self.det, p, img, sha, err, self.thresholds)
                r.path, r.heatmaps = name, None
                blobs[k] = pickle.dumps(r)
        finally:
            for entry in os.scandir(self.spool):
                os.unlink(entry.path)
        return {"index": batch["index"], "record": np.array(blobs, dtype=object)}

    def _locate(self, row: _Row) -> tuple[Path, str]:
        """The local file to decode: the path itself, or a spool copy of a remote object."""
        if row.item.root < 0:
            return Path(row.item.name), ""
        if row.item.root not in self.filesystems:
            self.filesystems[row.item.root] = open_uri(self.setup.roots[row.item.root])
        dest = self.spool / spool_name(row.index, row.item)
        return dest, fetch(self.filesystems[row.item.root][0], row.item, dest, self.det.max_file_bytes)


@dataclass(frozen=True)
class _Row:
    index: int
    item: Item
    done: bool
    done_sha: str
    done_error: str

    @classmethod
    def of(cls, batch: dict[str, np.ndarray], k: int) -> _Row:
        item = Item(
            os.fsdecode(batch["name"][k]), int(batch["root"][k]), str(batch["fs_path"][k]), int(batch["size"][k])
        )
        return cls(
            int(batch["index"][k]), item, bool(batch["done"][k]), str(batch["done_sha"][k]), str(batch["done_error"][k])
        )

    def done_record(self) -> dict:
        return {"sha256": self.done_sha, "errors": [self.done_error] if self.done_error else []}


def open_detector(setup: ActorSetup) -> Detector:
    """The actor's Detector. An ONNX model gets `threads` intra-op threads (the CPUs the actor holds):
    onnxruntime would otherwise take every core of the node in every actor, and N actors would spin
    N x cores threads on the node's cores."""
    path = Path(setup.model_path)
    if setup.model_blob is not None:
        path = _materialize(setup)
    if backend_for(path, setup.backend) != "onnx":
        return Detector.load(path, setup.backend, setup.options, setup.limits)
    from detector.backends.onnx_backend import OnnxBackend

    return Detector(OnnxBackend(path, threads=setup.threads), setup.options, setup.limits)


def _materialize(setup: ActorSetup) -> Path:
    """The shipped ONNX file, written once per node (same name, so records name the same model)."""
    import ray

    target = Path(tempfile.gettempdir()) / "logo-detector-ray" / setup.model_sha256 / Path(setup.model_path).name
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(ray.get(setup.model_blob[0]))
        os.replace(tmp, target)
    return target


def run_ray(job: ScanJob, console: Any = None) -> BatchSummary:
    """Scan a job on a Ray cluster (`RayOptions`: which cluster, how many actors); the summary.

    Example:
        >>> from detector.backends import ModelSource
        >>> from detector.engines import ScanJob
        >>> from detector.results.writer import OutputOptions
        >>> job = ScanJob([Path("s3://bucket/photos/")], ModelSource("model.onnx"),
        ...               output=OutputOptions(format="jsonl", output="results.jsonl"),
        ...               engine_options=RayOptions(address="auto"))
        >>> run_ray(job).images  # doctest: +SKIP
        1000000
    """
    ray = import_ray()
    opts = job.engine_options if isinstance(job.engine_options, RayOptions) else RayOptions()
    if job.output.annotated_dir is not None:
        raise DetectorError("--out (annotated images) needs the local engine: the ray engine only writes records")
    console = console or Console()
    listing = list_sources(job.inputs, job.folders.glob)
    total = len(listing.items) + len(listing.videos) + len(listing.remote_videos)
    if not total:
        raise DetectorError("no images or videos found in the given paths")
    det = Detector.load(job.source.model, job.source.backend, job.options, job.limits)  # a bad model fails here
    local_inputs = [Path(p) for p in job.inputs if as_uri(p) is None]
    writer = ScanWriter(job.output, det.meta, local_inputs, console, single=total == 1)
    if writer.repaired:  # one plain line on stderr, as the local engine says it
        print(f"{job.output.output}: cut a torn last line ({writer.repaired} bytes) before appending", file=sys.stderr)
    done = done_in_jsonl(job.output.output_path) if job.output.resume and job.output.output_path else Done()
    summary = BatchSummary()
    if listing.items:
        with connected(ray, opts.address):
            _scan_on_cluster(ray, _Run(job, opts, det, listing, done, writer, summary))
    for name in listing.remote_videos:
        _write(writer, summary, det.error_result(name, "a video behind a URI: copy it to a local path to scan it"))
    if listing.videos:
        summary.merge(_scan_videos(job, det, listing.videos, writer))
    writer.close()
    return summary


@dataclass
class _Run:
    job: ScanJob
    opts: RayOptions
    det: Detector
    listing: Listing
    done: Done
    writer: ScanWriter
    summary: BatchSummary


@contextmanager
def connected(ray: Any, address: str | None) -> Iterator[None]:
    """Join the cluster at `address` ("auto", HOST:PORT, ray://...), or start one on this machine (None);
    left at the end. A Ray already initialised by the caller (the Python API) is used as it is."""
    if ray.is_initialized():
        yield
        return
    kw: dict[str, Any] = {"logging_level": logging.ERROR}
    if address is None:
        kw["include_dashboard"] = False
    else:
        check_reachable(address)
    try:
        ray.init(address=address, **kw)
    except Exception as e:  # ConnectionError, ValueError, RuntimeError, with multi-line texts
        where = f"the Ray cluster at {address}" if address else "a local Ray cluster"
        hint = ""
        if address not in (None, "auto") and "RAY_AUTH_MODE" not in os.environ:
            hint = " (a cluster with token authentication also needs RAY_AUTH_MODE=token and its token)"
        raise DetectorError(f"cannot start or join {where}: {_first_line(e)}{hint}") from None
    try:
        yield
    finally:
        ray.shutdown()


def check_reachable(address: str, timeout: float = 5.0) -> None:
    """A HOST:PORT (or ray://HOST:PORT) where nothing answers is one line now: Ray itself would keep
    reconnecting for minutes. "auto" is left to Ray, which fails at once when no cluster runs here."""
    found = re.fullmatch(r"(?:ray://)?\[?([^\[\]]+?)\]?:(\d+)", address)
    if not found:
        return
    try:
        socket.create_connection((found.group(1), int(found.group(2))), timeout=timeout).close()
    except OSError as e:
        raise DetectorError(f"cannot join the Ray cluster at {address}: nothing answers there ({e})") from None


def _scan_on_cluster(ray: Any, run: _Run) -> None:
    """Stream every item through the actors; write each input's first record; fill the gaps."""
    from tqdm import tqdm

    items = run.listing.items
    logging.getLogger("ray.data").setLevel(logging.ERROR)
    seen: set[int] = set()
    bar = tqdm(total=len(items), unit="img", desc="scan", disable=None if len(items) > 1 else True)
    with _data_context(ray), bar:
        out = _mapped(ray, ray.data.from_arrow(_blocks(items, run.done, run.opts.ray_batch_size)), run)
        try:
            for batch in out.iter_batches(batch_size=None, batch_format="numpy"):
                _take(batch, seen, run, bar)
        except Exception as e:
            raise DetectorError(
                f"the Ray scan stopped after {len(seen)} of {len(items)} inputs: {_first_line(e)} "
                "(the records so far are written; run again with --resume)"
            ) from None
    reason = f"not scanned: its actor died on every one of {MAX_TASK_RETRIES + 1} tries; --resume tries it again"
    for i in sorted(set(range(len(items))) - seen):
        _write(run.writer, run.summary, run.det.error_result(items[i].name, reason))


#: Ray Data settings for a scan: the driver's own bar counts records (as the local engine's does), and a
#: batch that killed its actor on every try gives error records for its inputs instead of stopping the scan.
DATA_CONTEXT = {"enable_progress_bars": False, "print_on_execution_start": False, "max_errored_blocks": -1}


@contextmanager
def _data_context(ray: Any) -> Iterator[None]:
    """DATA_CONTEXT for the scan, the caller's settings back afterwards (the Python API shares them)."""
    ctx = ray.data.DataContext.get_current()
    saved = {k: getattr(ctx, k) for k in DATA_CONTEXT}
    for k, v in DATA_CONTEXT.items():
        setattr(ctx, k, v)
    try:
        yield
    finally:
        for k, v in saved.items():
            setattr(ctx, k, v)


def _mapped(ray: Any, ds: Any, run: _Run) -> Any:
    """The scanning stage: a fixed pool of ScanActors, restarted when killed, each batch retried."""
    resources = ray.cluster_resources()
    if run.opts.actor_gpus and resources.get("GPU", 0) < run.opts.actor_gpus:  # Ray would wait for one forever
        raise DetectorError(f"--actor-gpus {run.opts.actor_gpus:g}: the cluster has {resources.get('GPU', 0):g} GPUs")
    actors = run.opts.actors or max(1, int(resources.get("CPU", 1)) // run.opts.actor_cpus)
    if run.opts.actor_gpus and not run.opts.actors:
        actors = min(actors, int(resources["GPU"] // run.opts.actor_gpus))
    with warnings.catch_warnings():  # Ray 2.60 deprecates max_restarts/max_task_retries as remote args
        warnings.simplefilter("ignore")  # without a named parameter for them yet (its defaults retry forever)
        return ds.map_batches(
            ScanActor,
            fn_constructor_args=(_setup(ray, run),),
            batch_size=run.opts.ray_batch_size,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=actors),
            num_cpus=run.opts.actor_cpus,
            num_gpus=run.opts.actor_gpus,
            max_restarts=-1,
            max_task_retries=MAX_TASK_RETRIES,
        )


def _take(batch: dict[str, np.ndarray], seen: set[int], run: _Run, bar: Any) -> None:
    for i, blob in zip(batch["index"], batch["record"], strict=True):
        i = int(i)
        if i in seen:  # a retried batch sent this input again
            continue
        seen.add(i)
        bar.update(1)
        if not blob:
            run.summary.skipped_done += 1
            continue
        _write(run.writer, run.summary, pickle.loads(blob))


def _write(writer: ScanWriter, summary: BatchSummary, r: ScanResult) -> None:
    summary.add(r)
    writer.add(r, None)


def _setup(ray: Any, run: _Run) -> ActorSetup:
    """The actors' setup; an ONNX file goes through the object store, so no node needs the driver's disk."""
    model = Path(run.job.source.model) if run.job.source.model else default_model_path()
    blob = None
    if model.is_file():
        blob = [ray.put(model.read_bytes())]
    return ActorSetup(
        model_path=str(model),
        backend=run.job.source.backend,
        options=run.job.options,
        limits=run.job.limits,
        roots=tuple(run.listing.roots),
        workers=run.job.folders.workers,
        threads=run.opts.actor_cpus,
        model_blob=blob,
        model_sha256=run.det.backend.model_sha256,
    )


def _blocks(items: list[Item], done: Done, batch: int) -> list[Any]:
    """The inputs as Arrow tables, one Ray block each: `batch` rows, or more for a very long list (at
    most ~MAX_BLOCKS blocks: each costs the driver a few ms to hand over)."""
    import pyarrow as pa

    records = [done.images.get(it.name) for it in items]
    table = pa.table(
        {
            "index": pa.array(range(len(items)), pa.int64()),
            "name": pa.array([path_bytes(it.name) for it in items], pa.binary()),
            "root": pa.array([it.root for it in items], pa.int32()),
            "fs_path": pa.array([it.fs_path for it in items], pa.string()),
            "size": pa.array([it.size for it in items], pa.int64()),
            "done": pa.array([r is not None for r in records], pa.bool_()),
            "done_sha": pa.array([(r or {}).get("sha256") or "" for r in records], pa.string()),
            "done_error": pa.array([((r or {}).get("errors") or [""])[0] for r in records], pa.string()),
        }
    )
    rows = batch * max(1, math.ceil(len(items) / (MAX_BLOCKS * batch)))
    return [table.slice(i, rows) for i in range(0, len(items), rows)]


def _scan_videos(job: ScanJob, det: Detector, videos: list[Path], writer: ScanWriter) -> BatchSummary:
    """Local videos, on the driver, with the local engine's code (frame records, appearances, resume)."""
    return scan_many(
        det,
        videos,
        writer.add,
        resume_from=job.output.output_path if job.output.resume else None,
        workers=job.folders.workers,
        progress=False,
        sampling=job.video.sampling(),
        on_record=writer.add_record,
    )


def _first_line(e: BaseException) -> str:
    return ((str(e).strip().splitlines() or [e.__class__.__name__])[0])[:300]
