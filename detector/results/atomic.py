"""Files that appear whole or not at all: written to a hidden temp file beside the target, then renamed.

A scan or report that stops part-way leaves the previous file (or none), never half of one.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def temp_beside(path: Path) -> Path:
    """A new empty hidden file in `path`'s folder (made if needed), with the mode `open()` would give:
    rename it over `path` when it is complete.

    Example:
        >>> import tempfile
        >>> tmp = temp_beside(Path(tempfile.mkdtemp()) / "results.parquet")
        >>> tmp.name.startswith(".results.parquet.") and tmp.is_file()
        True
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600
    return Path(tmp)


def write_atomic(path: Path, text: str) -> None:
    """Write `text` to a temp file beside `path`, then rename it over `path`: never a partial file."""
    tmp = temp_beside(path)
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
