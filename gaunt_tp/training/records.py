"""The run folder's records: the per-epoch history (``metrics.csv``), the final errors (``errors.json``) and their
Markdown table (the log's and ``gaunt-tp eval``'s). Every file is replaced atomically (temporary file, then a durable
rename)."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

from gaunt_tp.files import replace_durably

__all__ = ["append_csv", "format_tables", "keep_history_before", "read_history", "write_json"]


def read_history(path: Path) -> dict[str, list[float]]:
    """``metrics.csv`` by column: ``{"epoch": [1, 2, ...], column: [value per epoch]}``, NaN where a row has no value
    (a column added at a restart); ``{}`` for a file without rows."""
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        return {}
    columns = {key: [float(r[key]) if r[key] else math.nan for r in rows] for key in rows[0] if key != "epoch"}
    return {"epoch": [int(r["epoch"]) for r in rows], **columns}


def keep_history_before(path: Path, start: int) -> None:
    """Drop ``metrics.csv`` rows of epochs >= ``start`` (written after the checkpoint a restart resumes from)."""
    if not path.is_file():
        return
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    kept = [r for r in rows if int(r["epoch"]) < start]
    if len(kept) < len(rows):
        _rewrite_csv(path, list(rows[0]), kept)


def format_tables(tables: dict) -> str:
    """The error tables of :class:`ErrorAccumulator` (per split) as one Markdown table; stress columns when any
    split has stress errors."""
    columns = [("RMSE E (meV/atom)", "rmse_e_meV_per_atom"), ("RMSE E (meV)", "rmse_e_meV"),
               ("RMSE F (meV/A)", "rmse_f_meV_per_A"), ("MAE E (meV/atom)", "mae_e_meV_per_atom"),
               ("MAE E (meV)", "mae_e_meV"), ("MAE F (meV/A)", "mae_f_meV_per_A")]  # fmt: skip
    if any("rmse_stress_meV_per_A3" in m for table in tables.values() for m in table.values()):
        columns += [("RMSE stress (meV/A^3)", "rmse_stress_meV_per_A3"),
                    ("MAE stress (meV/A^3)", "mae_stress_meV_per_A3")]  # fmt: skip
    lines = ["| split | config_type | n | " + " | ".join(title for title, _ in columns) + " |",
             "|---|---|---|" + "---|" * len(columns)]  # fmt: skip
    for split, table in tables.items():
        for kind, m in table.items():
            values = " | ".join(f"{m.get(key, math.nan):.2f}" for _, key in columns)
            lines.append(f"| {split} | {kind} | {m['n']} | {values} |")
    return "\n".join(lines)


def append_csv(path: Path, row: dict) -> None:
    """Append ``row``; a column the file lacks (``--loss stress`` turned on at a restart) rewrites it with the
    column added, empty in the earlier rows."""
    header = None
    if path.is_file():
        with path.open(newline="") as fh:
            header = next(csv.reader(fh), None)
    if header is not None and (missing := [k for k in row if k not in header]):
        with path.open(newline="") as fh:
            rows = list(csv.DictReader(fh))
        header = [*header, *missing]
        _rewrite_csv(path, header, rows)
    with path.open("a", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=header or list(row))
        if header is None:
            writer.writeheader()
        writer.writerow(row)


def _rewrite_csv(path: Path, header: list[str], rows: list[dict]) -> None:
    """Replace ``path`` with ``rows`` under ``header`` (missing fields empty), atomically."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=header)
        writer.writeheader()
        writer.writerows(rows)
    replace_durably(tmp, path)


def write_json(path: Path, data: dict) -> None:
    """Strict JSON: a non-finite number (an error over no labels) is written as null."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(_finite_or_none(data), indent=2, allow_nan=False))
    replace_durably(tmp, path)


def _finite_or_none(value: object) -> object:
    if isinstance(value, dict):
        return {k: _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_none(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
