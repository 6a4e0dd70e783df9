"""How request threads reach the model: merged into shared calls (micro-batching), or one call at a time.

A CPU forward pass of a few dozen tiles costs a fixed overhead (graph dispatch, thread-pool wake-up,
small matrix products) that a bigger batch amortizes. When several requests scan at once, each of
their `predict` calls is queued here; one worker thread takes everything queued (waiting a few ms for
more when it has less than `max_batch` tiles), runs ONE `inner.predict` on the concatenation and hands
each caller its own rows. `MicroBatchingBackend` implements the same `Backend` protocol as the runtime
it wraps, so the scan pipeline does not know it is there.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from detector.backends.base import Backend, BackendOutput
from detector.errors import DetectorError

log = logging.getLogger("detector.serve")


class BatcherClosed(DetectorError):
    """`predict` after `close()`: the server is shutting down."""


@dataclass(eq=False)  # jobs are compared by identity (their arrays have no truth value)
class _Job:
    tiles: np.ndarray
    with_features: bool
    done: threading.Event = field(default_factory=threading.Event)
    output: BackendOutput | None = None
    error: BaseException | None = None


@dataclass
class BatchStats:
    """Counters for /healthz and the load benchmark: how much merging really happened."""

    calls: int = 0  # inner.predict calls
    jobs: int = 0  # predict calls from the pipeline
    tiles: int = 0
    largest_call: int = 0  # tiles

    def as_dict(self) -> dict[str, float]:
        return {
            "model_calls": self.calls,
            "predict_requests": self.jobs,
            "tiles": self.tiles,
            "mean_tiles_per_call": round(self.tiles / self.calls, 2) if self.calls else 0.0,
            "largest_call": self.largest_call,
        }


class _WrappedBackend:
    """What a `Backend` wrapper exposes of the runtime it wraps, so the pipeline cannot tell them apart."""

    def __init__(self, inner: Backend) -> None:
        self.inner = inner
        self.meta = inner.meta
        self.name = inner.name
        self.model_name = inner.model_name
        self.model_sha256 = inner.model_sha256
        self.head_kernel = inner.head_kernel
        self.head_bias = inner.head_bias


class MicroBatchingBackend(_WrappedBackend):
    """A `Backend` that merges concurrent `predict` calls into shared calls of the wrapped backend.

    A single job larger than `max_batch` runs alone and is never split: the pipeline already sizes its
    batches (`--batch-size`), and splitting would only add calls. `wait_ms` is how long the worker,
    once it has work, waits for more before calling the model; under load the queue fills while the
    previous call runs, so merging happens without any waiting at all.
    """

    def __init__(self, inner: Backend, max_batch: int = 128, wait_ms: float = 3.0) -> None:
        if max_batch < 1:
            raise DetectorError("max_batch must be at least 1")
        super().__init__(inner)
        self.max_batch = max_batch
        self.wait_s = max(0.0, wait_ms) / 1e3
        self.stats = BatchStats()
        self._queue: deque[_Job] = deque()
        self._cond = threading.Condition()
        self._closing = False
        self._worker = threading.Thread(target=self._run, name="micro-batcher", daemon=True)
        self._worker.start()

    def predict(self, tiles: np.ndarray, with_features: bool = False) -> BackendOutput:
        """Called from request threads; blocks until the shared call that carried these tiles is done."""
        if len(tiles) == 0:
            return self.inner.predict(tiles, with_features)
        job = _Job(np.asarray(tiles), with_features)
        with self._cond:
            if self._closing:
                raise BatcherClosed("the server is shutting down")
            self._queue.append(job)
            self._cond.notify()
        job.done.wait()
        if job.error is not None:
            raise job.error
        assert job.output is not None
        return job.output

    def pending(self) -> int:
        with self._cond:
            return len(self._queue)

    def close(self, timeout: float = 30.0) -> None:
        """Refuse new work, finish what is queued, stop the worker thread."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._worker.join(timeout)
        if self.running:
            log.warning("micro-batching worker still busy after %.0f s", timeout)
        else:
            log.info("micro-batching worker stopped after %d model calls", self.stats.calls)

    @property
    def running(self) -> bool:
        return self._worker.is_alive()

    # -- the worker thread -------------------------------------------------------------------------

    def _take(self) -> list[_Job] | None:
        """The next group of jobs (at least one, at most `max_batch` tiles unless one job is bigger)."""
        with self._cond:
            idle = not self._queue
            while not self._queue:
                if self._closing:
                    return None
                self._cond.wait()
            # Under load the queue filled while the last call ran: take it now. An idle worker woken by
            # a first job waits a little for the requests that usually arrive with it.
            deadline = time.monotonic() + (self.wait_s if idle else 0.0)
            while not self._closing and sum(len(j.tiles) for j in self._queue) < self.max_batch:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            # Only tiles of one shape can share a call (dense scans send whole levels of any size).
            group = [self._queue.popleft()]
            shape, n = group[0].tiles.shape[1:], len(group[0].tiles)
            keep: deque[_Job] = deque()
            full = False
            for job in self._queue:  # by identity, in arrival order; other shapes wait for their own call
                if not full and job.tiles.shape[1:] == shape:
                    if n + len(job.tiles) <= self.max_batch:
                        group.append(job)
                        n += len(job.tiles)
                        continue
                    full = True
                keep.append(job)
            self._queue = keep
            return group

    def _run(self) -> None:
        while True:
            group = self._take()
            if group is None:
                break
            self._call(group)

    def _call(self, group: list[_Job]) -> None:
        want_features = any(j.with_features for j in group)
        try:
            tiles = group[0].tiles if len(group) == 1 else np.concatenate([j.tiles for j in group])
            out = self.inner.predict(tiles, with_features=want_features)
        except BaseException as e:  # every caller of this call gets the error; the worker goes on
            for j in group:
                j.error = e
                j.done.set()
            return
        n = len(tiles)
        with self._cond:
            self.stats.calls += 1
            self.stats.jobs += len(group)
            self.stats.tiles += n
            self.stats.largest_call = max(self.stats.largest_call, n)
        start = 0
        for j in group:
            end = start + len(j.tiles)
            feats = out.features[start:end] if (j.with_features and out.features is not None) else None
            j.output = BackendOutput(out.probs[start:end], out.cams[start:end], feats)
            j.done.set()
            start = end


class SerialBackend(_WrappedBackend):
    """A `Backend` that lets one model call run at a time, each request's tiles on their own.

    What a server without micro-batching usually does (a lock around the model): the activations of
    one call at a time in memory, no merging. The benchmark's "one call at a time" baseline, and a
    choice for machines where calls side by side would not fit in memory.
    """

    def __init__(self, inner: Backend) -> None:
        super().__init__(inner)
        self._lock = threading.Lock()

    def predict(self, tiles: np.ndarray, with_features: bool = False) -> BackendOutput:
        with self._lock:
            return self.inner.predict(tiles, with_features)
