"""Writing benchmark results: JSON replaced atomically, so a crash never leaves half a file."""

from __future__ import annotations

import json
import os
from pathlib import Path


def write_json(path: Path, report: dict) -> None:
    """Write ``report`` to ``path`` through a temporary file and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(report, indent=2))
    os.replace(tmp, path)
