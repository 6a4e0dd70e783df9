"""Import TensorFlow without its C++ start-up chatter (oneDNN notices, CUDA probes on CPU machines).

TF_CPP_MIN_LOG_LEVEL silences only part of it (STACK-NOTES), so the import and the first device query
run with file descriptor 2 pointed at /dev/null. Python exceptions still propagate normally. TF picks a
GPU by itself when one is there; on a machine without one it falls back to the CPU.
"""

from __future__ import annotations

import os
import sys


def import_tensorflow_quietly() -> None:
    if "tensorflow" in sys.modules:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    sys.stderr.flush()
    os.dup2(devnull, 2)
    try:
        import tensorflow as tf

        tf.config.list_physical_devices()
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
