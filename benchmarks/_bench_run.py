"""Run a measurement in a fresh process: wall time, its CPU time and peak RSS (wait4), and the others' load.

The machine is shared, so every run also reports how many cores *other* processes kept busy meanwhile
(all busy CPU time in /proc/stat minus the child's own, over the wall time): a slow row next to a high
"other load" is contention, not the code.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
WORKER = Path(__file__).resolve().parent / "_bench_worker.py"
PYTHON = sys.executable


def _busy_seconds() -> float:
    """CPU seconds all cores spent busy since boot (/proc/stat: everything but idle and iowait)."""
    try:
        parts = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return float("nan")
    v = [int(x) for x in parts]
    idle = v[3] + (v[4] if len(v) > 4 else 0)
    return (sum(v[:8]) - idle) / os.sysconf("SC_CLK_TCK")


@dataclass
class Run:
    argv: list[str]
    returncode: int
    wall_s: float
    cpu_s: float  # the child's user + system time
    max_rss_mb: float  # the child's peak resident set (ru_maxrss)
    other_load: float  # cores other processes kept busy during the run
    stdout: str = ""
    stderr: str = ""
    result: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {
            "wall_s": round(self.wall_s, 3),
            "cpu_s": round(self.cpu_s, 3),
            "max_rss_mb": round(self.max_rss_mb, 1),
            "other_load": round(self.other_load, 2),
        }


#: A tiny launcher between this process and the measured command. Linux keeps a process's RSS high-water
#: mark across exec, and a child forked from this (large) process would start with ours: the launcher
#: forks the command from a ~10 MiB interpreter and writes the command's own ru_maxrss (KiB) to the file
#: descriptor given as its first argument.
LAUNCHER = (
    "import os,sys\n"
    "fd=int(sys.argv[1])\n"
    "pid=os.fork()\n"
    "if pid==0:\n"
    " os.close(fd)\n"
    " os.execvp(sys.argv[2],sys.argv[2:])\n"
    "_,st,ru=os.wait4(pid,0)\n"
    "os.write(fd,str(ru.ru_maxrss).encode())\n"
    "sys.exit(os.waitstatus_to_exitcode(st) & 255)\n"
)


def run_cmd(argv: list[str], env: dict[str, str] | None = None, timeout: float = 3600) -> Run:
    """Run argv to the end; output captured in temporary files (no pipe can fill up)."""
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, tempfile.TemporaryFile() as rss:
        busy0, t0 = _busy_seconds(), time.perf_counter()
        proc = subprocess.Popen(
            [PYTHON, "-S", "-c", LAUNCHER, str(rss.fileno()), *argv],
            cwd=ROOT,
            env=full_env,
            stdout=out,
            stderr=err,
            pass_fds=(rss.fileno(),),
        )
        deadline = t0 + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.02)
        wall = time.perf_counter() - t0
        busy = _busy_seconds() - busy0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        rss.seek(0)
        child_kib = rss.read().decode().strip()
        cpu = usage.ru_utime + usage.ru_stime
        return Run(
            argv=argv,
            returncode=proc.returncode,
            wall_s=wall,
            cpu_s=cpu,
            max_rss_mb=int(child_kib) / 1024 if child_kib.isdigit() else float("nan"),
            other_load=max(0.0, (busy - cpu) / wall) if wall > 0 else 0.0,
            stdout=out.read().decode(errors="replace"),
            stderr=err.read().decode(errors="replace"),
        )


class WorkerError(RuntimeError):
    pass


def run_worker(task: str, args: dict[str, Any], timeout: float = 3600) -> Run:
    """`_bench_worker.py TASK ARGS` in a fresh interpreter; its JSON result in Run.result."""
    with tempfile.TemporaryDirectory(prefix="bench-speed-") as tmp:
        res = Path(tmp) / "result.json"
        run = run_cmd([PYTHON, str(WORKER), task, json.dumps(args), str(res)], timeout=timeout)
        if run.returncode != 0 or not res.is_file():
            tail = "\n".join(run.stderr.strip().splitlines()[-15:])
            raise WorkerError(f"worker {task} failed (exit {run.returncode}):\n{tail}")
        run.result = json.loads(res.read_text())
    return run
