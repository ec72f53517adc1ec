"""The one exception type for bad input (files, labels, options and model files a user passes in) and the warning
about input that is read anyway."""

from __future__ import annotations

__all__ = ["InputError", "InputWarning"]


class InputError(ValueError):
    """A problem with what the user gave (a missing file, a malformed label, an unknown option).

    The message names the file or option and what is wrong; ``gaunt-tp`` prints it on one line without a
    traceback and exits with status 2. Being a ValueError, it is caught by code that expects one.
    """


class InputWarning(UserWarning):
    """Input read anyway, but perhaps not as meant (a named key missing, where ASE's own label was read). Under
    torchrun only the first process shows these: every process reads the same input."""
