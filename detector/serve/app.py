"""The FastAPI app: routes, auth, admission control and the thread pool the scans run in.

Everything slow happens off the event loop: decoding, tiling and box finding run in a bounded
`ThreadPoolExecutor`, and their model calls meet in the `MicroBatchingBackend`. The loop only moves
bytes. Admission is counted per request (scanning or waiting for a scan thread): past `max_queue`,
a request gets 503 with Retry-After at once instead of waiting behind work it cannot see.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import shutil
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request, Security
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from starlette.background import BackgroundTask

from detector.api import Detector
from detector.serve.batching import MicroBatchingBackend
from detector.serve.config import ServeConfig
from detector.serve.errors import ApiError, install_error_handlers
from detector.serve.options import API_OPTIONS, RequestOptions, describe, openapi_type, parse_options
from detector.serve.scanning import scan_record, scan_upload
from detector.serve.uploads import (
    Received,
    Upload,
    is_zip,
    make_request_dir,
    receive_multipart,
    request_dir,
    unpack_zip,
)

STATIC = Path(__file__).parent / "static"


class Admission:
    """At most `limit` requests scanning at once; the rest are told to come back (503 Retry-After).

    Only touched from the event loop, so a plain counter is enough.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.active = 0

    def acquire(self) -> Callable[[], None]:
        """Take a slot or raise 503; returns the release function (safe to call more than once)."""
        if self.active >= self.limit:
            raise ApiError(
                503,
                "overloaded",
                f"the server is busy ({self.active} requests scanning, limit {self.limit}); retry shortly",
                {"Retry-After": "1"},
            )
        self.active += 1
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self.active -= 1

        return release


_BEARER = HTTPBearer(auto_error=False, description="Authorization: Bearer KEY")
_KEY_HEADER = APIKeyHeader(name="X-API-Key", auto_error=False, description="X-API-Key: KEY")


def _auth_dependency(api_key: str | None) -> list:
    """Bearer or X-API-Key, compared in constant time; no dependency at all when no key is set."""
    if api_key is None:
        return []
    want = api_key.encode()

    async def check(
        creds: Annotated[HTTPAuthorizationCredentials | None, Security(_BEARER)],
        key: Annotated[str | None, Security(_KEY_HEADER)],
    ) -> None:
        given = key or (creds.credentials if creds else "")
        if not given or not secrets.compare_digest(given.encode(), want):
            raise ApiError(
                401,
                "unauthorized",
                "missing or wrong API key: send 'Authorization: Bearer KEY' or 'X-API-Key: KEY'",
                {"WWW-Authenticate": "Bearer"},
            )

    return [Depends(check)]


def _openapi_for_uploads(batch: bool) -> dict[str, Any]:
    """Request docs for the hand-parsed multipart body (FastAPI cannot infer them from the signature)."""
    files_help = (
        "Images, or one zip of images (members that are not images become error records)."
        if batch
        else "One or more images."
    )
    props: dict[str, Any] = {
        "files": {"type": "array", "items": {"type": "string", "format": "binary"}, "description": files_help}
    }
    props.update({name: {"type": openapi_type(d), "description": describe(d)} for name, d in API_OPTIONS.items()})
    params = [
        {
            "name": name,
            "in": "query",
            "required": False,
            "schema": {"type": openapi_type(d)},
            "description": describe(d),
        }
        for name, d in API_OPTIONS.items()
    ]
    return {
        "parameters": params,
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {"schema": {"type": "object", "properties": props, "required": ["files"]}}
            },
        },
    }


_ERROR_SCHEMA = {
    "content": {
        "application/json": {
            "example": {"error": {"code": "not_an_image", "message": "x.txt: not an image (unrecognised format)"}}
        }
    }
}
_SCAN_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "API key missing or wrong", **_ERROR_SCHEMA},
    413: {"description": "a file over --max-upload-mb, too many files, or an image over --max-pixels", **_ERROR_SCHEMA},
    415: {"description": "not multipart, or a file that is not an image", **_ERROR_SCHEMA},
    422: {"description": "an invalid option, or an image that cannot be decoded", **_ERROR_SCHEMA},
    503: {"description": "too many requests scanning; retry after the Retry-After seconds", **_ERROR_SCHEMA},
}


class _Service:
    """What every route shares: the loaded detector, the scan threads, the admission gate."""

    def __init__(self, config: ServeConfig, detector: Detector) -> None:
        self.config, self.detector = config, detector
        self.executor = ThreadPoolExecutor(max_workers=config.scan_threads, thread_name_prefix="scan")
        self.admission = Admission(config.max_queue)
        self.batcher = detector.backend if isinstance(detector.backend, MicroBatchingBackend) else None

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    async def receive(self, request: Request, workdir: Path) -> Received:
        got = await receive_multipart(request, workdir, self.config.max_upload_bytes, self.config.max_files)
        got.fields.pop("files", None)  # a text part named 'files' (no file name): reported as no files below
        if not got.files:
            raise ApiError(422, "no_files", "no files in the request: send one or more parts named 'files'")
        return got

    def close(self) -> None:
        """uvicorn has finished the in-flight requests by now (SIGTERM/SIGINT): stop the workers cleanly."""
        self.executor.shutdown(wait=True, cancel_futures=True)
        if self.batcher is not None:
            self.batcher.close()

    def health(self) -> dict[str, Any]:
        return {
            "status": "ok",
            "model": self.detector.backend.model_name,
            "auth_required": self.config.api_key is not None,
            "queue": {"active": self.admission.active, "limit": self.admission.limit},
            "batching": self.batcher.stats.as_dict() if self.batcher else None,
        }

    def model_info(self) -> dict[str, Any]:
        det, config = self.detector, self.config
        return {
            "model": {"name": det.backend.model_name, "sha256": det.backend.model_sha256, "backend": det.backend.name},
            "positive_classes": det.meta.positive_classes,
            **asdict(det.meta),
            "limits": {
                "max_upload_mb": config.max_upload_mb,
                "max_files": config.max_files,
                "max_pixels": config.max_pixels,
                "max_queue": config.max_queue,
                "micro_batching": config.batching,
                "model_calls": config.model_calls,
                "max_batch": config.max_batch if config.batching else None,
                "max_windows": config.max_windows,
            },
        }


def create_app(config: ServeConfig, detector: Detector, site: Path | None = None) -> FastAPI:
    """The app around one loaded detector (its backend possibly a MicroBatchingBackend).

    `site` (`serve --private`): the in-browser scanner's static site, served at / instead of the
    upload page, cross-origin isolated so that the page can use threads."""
    svc = _Service(config, detector)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        svc.close()

    app = FastAPIOffline(
        title="logo-detector",
        version=detector.meta.version,
        description=(
            "Find brand logos in photos: verdicts, scores and boxes. Results are the JSON of "
            '`detect scan --format json`. Errors are `{"error": {"code", "message"}}`.'
        ),
        redoc_url=None,
        static_url="/docs-static",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    auth = _auth_dependency(config.api_key)
    _add_info_routes(app, svc, auth, site)
    _add_scan_routes(app, svc, auth)
    _add_batch_route(app, svc, auth)
    if site is not None:
        _add_private_site(app, site)
    return app


def _add_private_site(app: FastAPI, site: Path) -> None:
    """The site's files at / (after every route, so /v1/*, /docs and /healthz keep theirs), isolated."""
    from detector.web import ISOLATION_HEADERS

    @app.middleware("http")
    async def isolate(request: Request, call_next: Callable[..., Any]) -> Any:
        response = await call_next(request)
        response.headers.update(ISOLATION_HEADERS)
        return response

    app.mount("/", StaticFiles(directory=site), name="private-site")


def _add_info_routes(app: FastAPI, svc: _Service, auth: list, site: Path | None = None) -> None:
    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse((site or STATIC) / "index.html", headers={"Cache-Control": "no-cache"})

    @app.get("/healthz", summary="Liveness and load", tags=["service"])
    async def healthz() -> dict[str, Any]:
        """Open even with --api-key (load balancers and the page use it); says whether a key is needed."""
        return svc.health()

    @app.get("/v1/model", summary="The loaded model", tags=["scan"], dependencies=auth)
    async def model() -> dict[str, Any]:
        """Classes, tile and image thresholds, CAM settings, training metadata (model.json), server limits."""
        return svc.model_info()


def _add_scan_routes(app: FastAPI, svc: _Service, auth: list) -> None:
    detector = svc.detector

    @app.post(
        "/v1/scan",
        summary="Scan one or more images",
        tags=["scan"],
        dependencies=auth,
        openapi_extra=_openapi_for_uploads(batch=False),
        responses=_SCAN_ERRORS,
    )
    async def scan(request: Request) -> JSONResponse:
        """The result of `detect scan --format json`: an object for one file, a list for several.

        All or nothing: a file that is not an image fails the request (415; 413 over --max-pixels,
        422 undecodable). /v1/scan/batch reports such files as error records instead.
        """
        with request_dir() as workdir:
            got = await svc.receive(request, workdir)
            opts = parse_options(request.query_params, got.fields, detector.options)
            release = svc.admission.acquire()
            try:
                # Wait for every file, even after one failed, before the request dir goes away.
                records = await asyncio.gather(
                    *(svc.run(scan_upload, detector, up, opts) for up in got.files), return_exceptions=True
                )
            finally:
                release()
        for r in records:
            if isinstance(r, BaseException):
                raise r
        return JSONResponse(records[0] if len(records) == 1 else records)


def _add_batch_route(app: FastAPI, svc: _Service, auth: list) -> None:
    detector = svc.detector

    @app.post(
        "/v1/scan/batch",
        summary="Scan many images, results streamed as NDJSON",
        tags=["scan"],
        dependencies=auth,
        openapi_extra=_openapi_for_uploads(batch=True),
        responses={200: {"content": {"application/x-ndjson": {}}}, **_SCAN_ERRORS},
    )
    async def scan_batch(request: Request) -> StreamingResponse:
        """One JSON line per image as each finishes (not in upload order; `index` is the upload order).

        Images from the multipart parts, or from inside any uploaded zip. A file that cannot be read
        is a line with `errors`, like `detect scan --format jsonl`; the other files go on.
        """
        held = _Held(make_request_dir())
        try:
            got = await svc.receive(request, held.workdir)
            opts = parse_options(request.query_params, got.fields, detector.options)
            files = await svc.run(_expand_zips, got.files, held.workdir, svc.config)
            held.release = svc.admission.acquire()
        except BaseException:
            held.close()
            raise
        return StreamingResponse(
            _stream_records(detector, files, opts, svc.run, svc.config.batch_parallel, held.close),
            media_type="application/x-ndjson",
            background=BackgroundTask(held.close),  # also when the client hangs up before the first line
        )


class _Held:
    """What a streamed batch holds until its last line is sent: its temp dir and its admission slot.

    `close` runs from the stream's `finally` and again from the response's background task (the only
    hook left when the client hangs up before the stream starts); the second call does nothing.
    """

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.release: Callable[[], None] | None = None

    def close(self) -> None:
        if self.release is not None:
            self.release()
        shutil.rmtree(self.workdir, ignore_errors=True)


def _expand_zips(files: list[Upload], workdir: Path, config: ServeConfig) -> list[Upload]:
    """Zips replaced by their members; --max-files counts every image, the files after a zip too."""
    zips = [is_zip(up) for up in files]
    counted = zips.count(False)  # the plain files, wherever they are in the upload
    out: list[Upload] = []
    for up, zipped in zip(files, zips, strict=True):
        if zipped:
            members = unpack_zip(up, workdir, config.max_upload_bytes, config.max_files, counted)
            counted += len(members)
            out += members
        else:
            out.append(up)
    return out


async def _stream_records(
    detector: Detector,
    files: list[Upload],
    opts: RequestOptions,
    run: Callable[..., Any],
    parallel: int,
    cleanup: Callable[[], None],
) -> AsyncIterator[bytes]:
    """Scan up to `parallel` files at once, yield each record as it completes; always clean up."""
    gate = asyncio.Semaphore(parallel)

    async def one(index: int, up: Upload) -> dict[str, Any]:
        async with gate:
            try:
                rec = await run(scan_record, detector, up, opts)
            except Exception as e:  # a failure of the server, not of the file: still one line, others go on
                rec = detector.error_result(
                    up.name, f"internal error: {e.__class__.__name__}: {str(e)[:200]}"
                ).as_dict()
        rec["index"] = index
        return rec

    tasks = [asyncio.ensure_future(one(i, up)) for i, up in enumerate(files)]
    try:
        for next_done in asyncio.as_completed(tasks):
            yield (json.dumps(await next_done, ensure_ascii=False) + "\n").encode()
    finally:
        for t in tasks:
            t.cancel()
        cleanup()
