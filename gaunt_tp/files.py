"""Replacing files durably: after a crash, even of the machine, a path holds its old or its new content in full."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["replace_durably"]


def replace_durably(tmp: Path, path: Path) -> None:
    """Move the finished temporary file ``tmp`` onto ``path``.

    ``tmp``'s content is flushed to disk before the rename (otherwise a power cut can leave ``path`` renamed but
    empty), and the directory after it, so that the rename itself survives. Both must be in one directory.
    """
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    if os.name == "posix":  # directories cannot be opened for fsync on Windows
        fd = os.open(Path(path).parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
