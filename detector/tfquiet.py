"""Import TensorFlow without its C++ start-up chatter (oneDNN notices, CUDA probes on CPU machines).

TF_CPP_MIN_LOG_LEVEL silences only part of it (STACK-NOTES), so the import and the first device query
run with file descriptor 2 pointed at /dev/null. Python exceptions still propagate normally. TF picks a
GPU by itself when one is there; on a machine without one it falls back to the CPU.

The CLI installs `quiet_when_imported` instead of importing TensorFlow up front: whichever code imports
it first (Keras included) gets the quiet import, and a command that fails on its arguments (a missing
model directory, a data folder that is not one) says so in about a second, not after TF's 6-8 s.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def _stderr_muted() -> Iterator[None]:
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    sys.stderr.flush()
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def import_tensorflow_quietly() -> None:
    if "tensorflow" in sys.modules:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with _stderr_muted():
        import tensorflow as tf

        tf.config.list_physical_devices()


class _MutedLoader(importlib.abc.Loader):
    """TensorFlow's own loader, run with fd 2 muted, plus the first device query (its CUDA probe)."""

    def __init__(self, real: Any) -> None:
        self.real = real

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> Any:
        return self.real.create_module(spec)

    def exec_module(self, module: Any) -> None:
        with _stderr_muted():
            self.real.exec_module(module)
            module.config.list_physical_devices()

    def __getattr__(self, name: str) -> Any:  # resource readers and the like: the real loader's
        return getattr(self.real, name)


class _QuietFirstImport(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path: Any, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if fullname != "tensorflow":
            return None
        sys.meta_path.remove(self)  # once: the submodules load as usual
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _MutedLoader(spec.loader)
        return spec


def quiet_when_imported() -> None:
    """Make the process's first `import tensorflow` (or `import keras`) the quiet one, whenever it comes.

    Example:
        >>> quiet_when_imported()  # at a program's start; TensorFlow itself is not imported here
        >>> "tensorflow" in sys.modules or any(isinstance(f, _QuietFirstImport) for f in sys.meta_path)
        True
    """
    if "tensorflow" in sys.modules or any(isinstance(f, _QuietFirstImport) for f in sys.meta_path):
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.meta_path.insert(0, _QuietFirstImport())
