"""Option values as the flags and the YAML file give them, converted to the types of the config's fields."""

from __future__ import annotations

import argparse

from gaunt_tp.data.e0s import e0s_mapping
from gaunt_tp.errors import InputError

__all__ = ["boolean", "float_or_none", "typed"]


def float_or_none(text: str) -> float | None:
    """A number, or ``None``/``none`` (MACE's spelling for "off", e.g. ``--clip_grad None``)."""
    if text.lower() == "none":
        return None
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or None, got {text!r}") from None


def boolean(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def typed(name: str, kind: str, value: object) -> object:
    """``value`` of the field ``name`` (annotation ``kind``, e.g. ``"float | None"``) converted as its flag
    converts text; a value of another type (a list for a number, say) is an InputError."""
    optional = "None" in kind
    if value is None and optional:
        return None
    try:
        if "tuple" in kind:  # widths: "[64, 64, 64]" or "64,64,64" (flags, YAML text) or a YAML list
            items = value.strip().strip("[]()").split(",") if isinstance(value, str) else value
            items = [items] if isinstance(items, int) and not isinstance(items, bool) else items  # YAML's `64`
            if isinstance(items, (list, tuple)):
                widths = tuple(typed(name, "int", w.strip() if isinstance(w, str) else w) for w in items if w != "")
                if widths and min(widths) >= 1:
                    return widths
            raise ValueError
        elif "bool" in kind:
            if isinstance(value, str):
                return boolean(value)
            if isinstance(value, bool):
                return value
            if isinstance(value, int) and value in (0, 1):  # YAML's 1 and 0, as the flags take "1" and "0"
                return bool(value)
        elif "int" in kind or "float" in kind:
            integer = "float" not in kind
            if isinstance(value, str):
                if optional and value.lower() == "none":  # MACE's spelling for "off"
                    return None
                return int(value) if integer else float(value)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                if integer and float(value) != int(value):
                    raise ValueError
                return int(value) if integer else float(value)
        elif isinstance(value, str):
            return value
        elif isinstance(value, (int, float)) and not isinstance(value, bool):  # a YAML number for a name or a path
            return str(value)
        elif name == "E0s" and isinstance(value, dict):  # a YAML mapping {Z or symbol: eV}: kept in its text form
            return str(e0s_mapping(value, "E0s"))  # symbols become atomic numbers
        elif name == "config_type_weights" and isinstance(value, dict):  # checked below
            return value
    except (ValueError, argparse.ArgumentTypeError):
        pass
    wanted = ("true or false" if "bool" in kind else "a list of integers >= 1, e.g. [64, 64, 64]" if "tuple" in kind
              else "an integer" if "int" in kind and "float" not in kind else
              "a number" if "float" in kind else "text")  # fmt: skip
    raise InputError(f"{name} must be {wanted}{' or None' if optional else ''}, got {value!r}")
