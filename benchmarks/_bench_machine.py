"""The machine a benchmark ran on (CPU, cores, vector flags, memory, library versions, git commit) and its peak.

Peak fp32 FLOP/s = usable cores x clock x FLOPs per cycle per core, where FLOPs per cycle = fp32 lanes
of the widest vector unit (avx512f: 16, avx2: 8, else 4) x 2 (a fused multiply-add is two FLOPs) x FMA
pipes. Two FMA pipes is the default assumption (Intel server cores, Zen 2/3 at 256 bits), with one known
exception: AMD Zen 4 (family 25 with AVX-512) runs a 512-bit FMA as two halves on its two 256-bit pipes,
so it is counted as one 512-bit pipe (32 FLOPs/cycle, the same as 2 x 256-bit).

The clock: a VM's /proc/cpuinfo often shows only the nominal clock, and turbo runs higher. When a C
compiler is there, `_bench_fma.c` is built and measures the clock (a chain of dependent integer adds,
one per cycle) and the FMA throughput of a register-only loop at 256 and 512 bits, on one core and on
all of them; the peak then uses the measured clock, and the FMA loop is shown beside it as a check
(512-bit no faster than 256-bit per core confirms the "one 512-bit pipe" reading). Otherwise lscpu's
max MHz, else /proc/cpuinfo's MHz. int8 peak (VNNI): 4x the fp32 FLOPs per cycle (vpdpbusd does four
8-bit multiply-adds per 32-bit lane), 2x with only AVX2.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FLAGS_OF_INTEREST = ("avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16", "avx_vnni")
AMX_PREFIX = "amx"
PACKAGES = {
    "tensorflow": ("tensorflow", "tensorflow-cpu"),
    "keras": ("keras",),
    "onnxruntime": ("onnxruntime", "onnxruntime-gpu"),
    "onnx": ("onnx",),
    "tf2onnx": ("tf2onnx",),
    "numpy": ("numpy",),
    "opencv": ("opencv-python-headless", "opencv-python"),
}


def _cpuinfo() -> dict[str, str]:
    """The first processor block of /proc/cpuinfo."""
    out: dict[str, str] = {}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return out
    for line in text.split("\n\n")[0].splitlines():
        if ":" in line:
            k, v = line.split(":", 1)
            out[k.strip()] = v.strip()
    return out


def _lscpu_max_mhz() -> float | None:
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r"CPU max MHz:\s*([\d.]+)", text)
    return float(m.group(1)) if m else None


def _meminfo_gib(key: str) -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith(key + ":"):
                return round(int(line.split()[1]) / 1024**2, 1)
    except OSError:
        pass
    return None


def _version(names: tuple[str, ...]) -> str | None:
    for n in names:
        try:
            return metadata.version(n)
        except metadata.PackageNotFoundError:
            continue
    return None


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def fma_probe(cache: Path, flags: set[str], cores: int, runs: int = 3) -> dict[str, Any] | None:
    """Build (once) and run _bench_fma.c: measured clock and FMA-loop GFLOP/s (max over `runs`), or None."""
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    src = Path(__file__).resolve().parent / "_bench_fma.c"
    if not cc or not src.is_file() or not ({"avx2", "avx512f"} & flags and "fma" in flags):
        return None
    isa = ["-mavx512f", "-mfma"] if "avx512f" in flags else ["-mavx2", "-mfma"]
    key = hashlib.sha256(src.read_bytes() + " ".join(isa).encode()).hexdigest()[:12]
    exe = cache / f"fma-probe-{key}"
    try:
        if not exe.is_file():
            cache.mkdir(parents=True, exist_ok=True)
            tmp = exe.with_suffix(".tmp")
            subprocess.run([cc, "-O2", *isa, "-pthread", "-o", str(tmp), str(src)], check=True, capture_output=True)
            os.replace(tmp, exe)
        outs = [
            json.loads(subprocess.run([str(exe), str(cores)], capture_output=True, text=True, timeout=60).stdout)
            for _ in range(runs)
        ]
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    return {k: max(o[k] for o in outs) for k in outs[0]} | {"runs": runs, "compiler": cc, "isa_flags": isa}


def peak_flops(info: dict[str, str] | None = None, cache: Path | None = None) -> dict[str, Any]:
    """Peak fp32 (and int8) operations per second of the cores this process may use, with the reasoning."""
    info = info if info is not None else _cpuinfo()
    flags = set(info.get("flags", "").split())
    cores = usable_cores()
    probe = fma_probe(cache, flags, cores) if cache is not None else None
    max_mhz = _lscpu_max_mhz()
    if probe and probe.get("clock_ghz"):
        mhz, clock_src = probe["clock_ghz"] * 1000, "measured (dependent integer adds, best of 3)"
    elif max_mhz:
        mhz, clock_src = max_mhz, "lscpu max MHz"
    else:
        mhz, clock_src = float(info.get("cpu MHz", "0") or 0), "/proc/cpuinfo cpu MHz (nominal; turbo not counted)"
    if "avx512f" in flags:
        lanes, isa = 16, "avx512f"
    elif "avx2" in flags:
        lanes, isa = 8, "avx2"
    else:
        lanes, isa = 4, "sse"
    fma = 2 if "fma" in flags or isa == "avx512f" else 1
    pipes, why = 2, "assumed 2 FMA pipes per core"
    family = info.get("cpu family", "")
    vendor = info.get("vendor_id", "")
    if vendor == "AuthenticAMD" and family == "25" and isa == "avx512f":
        pipes, why = 1, "AMD Zen 4 (family 25 with AVX-512): 512-bit FMAs are split over its two 256-bit pipes"
    per_cycle = lanes * fma * pipes
    fp32 = cores * mhz * 1e6 * per_cycle
    int8_factor = 4 if ({"avx512_vnni", "avx_vnni"} & flags) else 2
    nominal_mhz = float(info.get("cpu MHz", "0") or 0)
    return {
        "cores": cores,
        "clock_mhz": mhz,
        "clock_source": clock_src,
        "nominal_mhz": nominal_mhz,
        "vector_isa": isa,
        "fp32_lanes": lanes,
        "fma_factor": fma,
        "fma_pipes": pipes,
        "pipes_reason": why,
        "fp32_flops_per_cycle_per_core": per_cycle,
        "fp32_peak_gflops": fp32 / 1e9,
        "int8_peak_gops": fp32 * int8_factor / 1e9,
        "int8_factor": int8_factor,
        "formula": f"{cores} cores x {mhz:.0f} MHz x {lanes} lanes x {fma} (FMA) x {pipes} pipe(s)",
        "two_pipes_at_nominal_gflops": cores * nominal_mhz * 1e6 * lanes * fma * 2 / 1e9,
        "fma_probe": probe,
    }


def machine_info(cache: Path | None = None) -> dict[str, Any]:
    info = _cpuinfo()
    flags = set(info.get("flags", "").split())
    commit = _git("rev-parse", "HEAD")
    dirty = bool(_git("status", "--porcelain", "--untracked-files=no"))
    try:
        load = os.getloadavg()
    except OSError:
        load = (float("nan"),) * 3
    return {
        "cpu_model": info.get("model name", platform.processor() or platform.machine()),
        "cpu_vendor": info.get("vendor_id", ""),
        "cpu_family_model": f"{info.get('cpu family', '?')}/{info.get('model', '?')}",
        "logical_cpus": os.cpu_count(),
        "usable_cores": usable_cores(),
        "flags": {f: f in flags for f in FLAGS_OF_INTEREST} | {"amx": any(f.startswith(AMX_PREFIX) for f in flags)},
        "memory_gib": _meminfo_gib("MemTotal"),
        "memory_available_gib": _meminfo_gib("MemAvailable"),
        "load_average_1_5_15": [round(x, 2) for x in load],
        "os": platform.platform(),
        "python": platform.python_version(),
        "versions": {k: _version(v) for k, v in PACKAGES.items()},
        "git_commit": commit + (" (uncommitted changes)" if dirty else ""),
        "peak": peak_flops(info, cache),
    }
