"""`detect export-web`: the whole scan in the visitor's browser, as a self-contained static site.

The site is the page (static/index.html, app.mjs, web.css over the upload page's style.css), the
scan library (static/logo-scan.mjs and static/scan/, the same module examples/node/scan_image.js runs
on onnxruntime-node), the model file(s), and onnxruntime-web's WebAssembly build copied from its npm
package at build time (an `npm ci` in this folder on first use; never a CDN). Photos are decoded and
scanned in the tab: the page fetches only its own files, and its Content-Security-Policy allows
nothing else.

Threads need cross-origin isolation: serve the site with `Cross-Origin-Opener-Policy: same-origin`
and `Cross-Origin-Embedder-Policy: require-corp` (the `_headers` file written beside index.html says
so to hosts that read it); without them the page runs on one thread.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from detector.errors import DetectorError
from detector.options import check_fields, option

WEB_DIR = Path(__file__).resolve().parent
STATIC = WEB_DIR / "static"
PAGE_STYLE = WEB_DIR.parent / "serve" / "static" / "style.css"
SITE_FORMAT = "logo-detector/web-site@1"
QUANTIZE = ("none", "fp16", "int8")
#: onnxruntime-web's CPU (WebAssembly) build: the ES module, its Emscripten loader and the binary.
ORT_FILES = ("ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")
#: A folder holding ORT_FILES to use instead of the npm package (machines without npm).
ORT_ENV = "DETECT_ORT_WEB_DIST"
ISOLATION_HEADERS = {"Cross-Origin-Opener-Policy": "same-origin", "Cross-Origin-Embedder-Policy": "require-corp"}


@dataclass(frozen=True)
class WebExport:
    """What `detect export-web` builds (each option declared once: the CLI's flags come from here)."""

    model: str = option(
        help="A model directory (exported to ONNX, checked against Keras) or an .onnx file.",
        argument=True,
    )
    out: str = option(help="The folder to write the site into (a new folder, or a site export-web wrote).")
    quantize: str = option(
        "none", "Also write a smaller model, which the page loads: fp16, int8 (static QDQ), or none.", choices=QUANTIZE
    )
    data: str | None = option(None, "Tiles or scenes: int8 calibrates on its train split, checks run on val+test.")

    def __post_init__(self) -> None:
        check_fields(self)


@dataclass
class WebSite:
    """What export_web wrote: the folder, its model files (precision, path, bytes, sha256) and checks."""

    out: Path
    models: list[dict]
    default: str
    ort_version: str
    seconds: float
    checks: list[dict] = field(default_factory=list)  # the quantized file against fp32, on held-back tiles

    @property
    def bytes(self) -> int:
        return sum(p.stat().st_size for p in self.out.rglob("*") if p.is_file())

    def summary(self) -> str:
        files = ", ".join(f"{m['precision']} {m['bytes'] / 1e6:.1f} MB" for m in self.models)
        agree = "".join(
            f"; {c['precision']} vs fp32: max |dprob| {c['max_abs_prob']:.1e}, verdicts {c['verdict_agreement']:.1%}"
            for c in self.checks
        )
        return (
            f"site written to {self.out} ({self.bytes / 1e6:.1f} MB; model {files}, the page loads {self.default}; "
            f"onnxruntime-web {self.ort_version}{agree}); try it: python -m http.server -d {self.out}"
        )


def export_web(cfg: WebExport, log: Callable[[str], None] = print) -> WebSite:
    """Write the in-browser scanner site for a model: the page, the scan library, the model, onnxruntime-web.

    Example:
        >>> site = export_web(WebExport("demo-output/model", out="site", quantize="int8"))  # doctest: +SKIP
        >>> site.default, [m["path"] for m in site.models]  # doctest: +SKIP
        ('int8', ['models/model.onnx', 'models/model-int8.onnx'])
    """
    t0 = time.perf_counter()
    out, model = Path(cfg.out), Path(cfg.model)
    if not (model.is_dir() or (model.is_file() and model.suffix.lower() == ".onnx")):
        raise DetectorError(f"model {model}: no such model directory or .onnx file")
    _check_out(out)
    dist, version = ort_dist(log)
    name = model.stem if model.is_file() else model.name
    with tempfile.TemporaryDirectory(prefix="detect-web-") as tmp:
        files, checks = model_files(cfg, Path(tmp), log)
        models = write_site(out, files, dist)
    default = "fp32" if cfg.quantize == "none" else cfg.quantize
    _write_manifest(out, name, default, models, version)
    return WebSite(out, models, default, version, time.perf_counter() - t0, checks)


def _check_out(out: Path) -> None:
    """A new or empty folder, or one export-web wrote before (its site.json says so): nothing else is replaced."""
    if out.exists() and not out.is_dir():
        raise DetectorError(f"out {out}: not a folder")
    if out.is_dir() and any(out.iterdir()):
        try:
            ours = json.loads((out / "site.json").read_text()).get("format") == SITE_FORMAT
        except (OSError, ValueError, AttributeError):
            ours = False
        if not ours:
            raise DetectorError(f"out {out}: the folder is not empty and holds no site from export-web; choose another")


def model_files(cfg: WebExport, tmp: Path, log: Callable[[str], None]) -> tuple[dict[str, Path], list[dict]]:
    """{precision: .onnx file} for the site: fp32 always, and the quantized one when asked; its checks."""
    model = Path(cfg.model)
    if model.is_dir():
        from detector.tfquiet import import_tensorflow_quietly
        from export.onnx_export import export_model

        import_tensorflow_quietly()
        fp32 = tmp / "model.onnx"
        export_model(model, fp32, data=cfg.data, log=log)
    elif model.is_file() and model.suffix.lower() == ".onnx":
        fp32 = model
    else:
        raise DetectorError(f"model {model}: no such model directory or .onnx file")
    precision = _precision_of(fp32)
    if precision != "fp32":
        raise DetectorError(f"model {model}: a {precision} file; give the fp32 export (the page can load both)")
    files = {"fp32": fp32}
    if cfg.quantize == "none":
        return files, []
    files[cfg.quantize], check = quantize_onnx(fp32, cfg.quantize, tmp / f"model-{cfg.quantize}.onnx", cfg.data, log)
    return files, [check]


def _precision_of(path: Path) -> str:
    from detector.backends.onnx_backend import OnnxBackend

    return OnnxBackend(path).props.get("precision", "fp32")


def quantize_onnx(
    fp32: Path, precision: str, out: Path, data: str | None, log: Callable[[str], None]
) -> tuple[Path, dict]:
    """An fp16 or int8 copy of an fp32 export (`detect export --quantize`'s conversions, same metadata),
    and how it agrees with the fp32 file on held-back tiles (the data's val+test split, or drawn in code)."""
    import onnx

    from detector.backends.onnx_backend import OnnxBackend
    from export.onnx_export import compare, set_metadata, to_fp16, to_int8
    from export.samples import dataset_tiles, synthetic_tiles

    ref = OnnxBackend(fp32)
    meta = ref.meta

    def tiles(n: int, splits: tuple[str, ...], seed: int):
        return dataset_tiles(data, meta, n, splits, seed) if data else synthetic_tiles(meta.input_size, n, seed)

    if precision == "fp16":
        proto = to_fp16(onnx.load(str(fp32)))
    else:
        log("calibrating int8 on 256 tiles")
        to_int8(fp32, out, tiles(256, ("train",), 0))
        proto = onnx.load(str(out))
    set_metadata(proto, meta, ref.head_kernel, ref.head_bias, ref.props.get("source_model_sha256", ""), precision)
    onnx.save(proto, str(out))
    held = tiles(128, ("val", "test"), 1)
    outs = [ref.predict(held[i : i + 16]) for i in range(0, len(held), 16)]
    reference = (_cat([o.probs for o in outs]), _cat([o.cams for o in outs]))
    return out, compare(reference, out, held, meta, precision).as_dict()


def _cat(parts: list):
    import numpy as np

    return np.concatenate(parts)


def ort_dist(log: Callable[[str], None] = print) -> tuple[Path, str]:
    """onnxruntime-web's dist folder and version: $DETECT_ORT_WEB_DIST, else the npm package (npm ci once)."""
    given = os.environ.get(ORT_ENV)
    if given:
        dist = Path(given)
        missing = [f for f in ORT_FILES if not (dist / f).is_file()]
        if missing:
            raise DetectorError(f"{ORT_ENV}={dist}: missing {', '.join(missing)}")
        return dist, _ort_version(dist)
    root = _npm_root()
    dist = root / "node_modules" / "onnxruntime-web" / "dist"
    if not all((dist / f).is_file() for f in ORT_FILES):
        _npm_ci(root, log)
    return dist, _ort_version(dist)


def _ort_version(dist: Path) -> str:
    try:
        return str(json.loads((dist.parent / "package.json").read_text())["version"])
    except (OSError, ValueError, KeyError):
        return "unknown"


def _npm_root() -> Path:
    """Where `npm ci` runs: this folder, or a user cache copy of its package files when it is read-only."""
    if os.access(WEB_DIR, os.W_OK):
        return WEB_DIR
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "logo-detector" / "web"
    cache.mkdir(parents=True, exist_ok=True)
    for name in ("package.json", "package-lock.json", ".npmrc"):
        shutil.copy2(WEB_DIR / name, cache / name)
    return cache


def _npm_ci(root: Path, log: Callable[[str], None]) -> None:
    npm = shutil.which("npm")
    if npm is None:
        raise DetectorError(
            f"export-web copies onnxruntime-web from its npm package: install Node.js/npm, or set {ORT_ENV} "
            "to a folder holding " + ", ".join(ORT_FILES)
        )
    log(f"installing onnxruntime-web into {root / 'node_modules'} (npm ci, once)")
    try:
        done = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"], cwd=root, capture_output=True, text=True, timeout=600
        )
    except subprocess.TimeoutExpired:
        raise DetectorError(f"`npm ci` in {root} took over 10 minutes (is the npm registry reachable?)") from None
    if done.returncode != 0:
        last = (done.stderr.strip() or done.stdout.strip() or "no output").splitlines()[-1]
        raise DetectorError(f"`npm ci` in {root} failed (exit {done.returncode}): {last}")


def write_site(out: Path, files: dict[str, Path], dist: Path) -> list[dict]:
    """Copy the page, the scan library, onnxruntime-web and the models into `out`; the model entries."""
    out.mkdir(parents=True, exist_ok=True)
    for src in STATIC.rglob("*"):
        if src.is_file():
            dst = out / src.relative_to(STATIC)
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
    shutil.copy2(PAGE_STYLE, out / "style.css")  # the upload page's look, one stylesheet for both pages
    (out / "ort").mkdir(exist_ok=True)
    for f in ORT_FILES:
        shutil.copy2(dist / f, out / "ort" / f)
    models_dir = out / "models"
    shutil.rmtree(models_dir, ignore_errors=True)
    models_dir.mkdir()
    models = []
    for precision, path in files.items():
        target = models_dir / ("model.onnx" if precision == "fp32" else f"model-{precision}.onnx")
        shutil.copy2(path, target)
        digest = hashlib.sha256(target.read_bytes()).hexdigest()
        rel = target.relative_to(out).as_posix()
        models.append({"precision": precision, "path": rel, "bytes": target.stat().st_size, "sha256": digest})
    headers = "".join(f"  {k}: {v}\n" for k, v in ISOLATION_HEADERS.items())
    note = "# Threads in the page need cross-origin isolation (the Netlify / Cloudflare Pages format)\n"
    (out / "_headers").write_text(f"{note}/*\n{headers}")
    return models


def _write_manifest(out: Path, name: str, default: str, models: list[dict], ort_version: str) -> None:
    manifest = {"format": SITE_FORMAT, "name": name, "default": default, "models": models}
    manifest["onnxruntime_web"] = ort_version
    (out / "site.json").write_text(json.dumps(manifest, indent=1) + "\n")
