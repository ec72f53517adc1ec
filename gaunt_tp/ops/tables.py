"""Float64 master tables with per-(dtype, device) copies, shared by the backends."""

from __future__ import annotations

import torch

__all__ = ["TableCache"]


class TableCache:
    """Holds a backend's constant tables in float64 on the CPU and hands out converted copies.

    Converting from the float64 masters every time (instead of converting buffers in
    place with ``module.to``) keeps float64 results exact after a round trip through
    float32. Copies for float32 and float64 on the CPU are made up front so that
    ``torch.compile`` sees plain attribute reads.

    Args:
        tables: name -> float64 tensor, or an integer tensor (an index table: only its device changes).
    """

    def __init__(self, tables: dict[str, torch.Tensor]) -> None:
        self.masters = {k: v.detach().clone() for k, v in tables.items()}
        self._copies: dict[tuple[torch.dtype, torch.device], dict[str, torch.Tensor]] = {}
        for dtype in (torch.float32, torch.float64):
            self.get(dtype, torch.device("cpu"))

    def get(self, dtype: torch.dtype, device: torch.device) -> dict[str, torch.Tensor]:
        """The tables as ``dtype`` on ``device`` (integer tables keep their dtype)."""
        key = (dtype, device)
        copies = self._copies.get(key)
        if copies is None:
            if dtype not in (torch.float32, torch.float64, torch.float16, torch.bfloat16):
                raise TypeError(f"features must be floating point, got {dtype}")
            copies = {
                k: v.to(device=device, dtype=dtype if v.is_floating_point() else v.dtype).contiguous()
                for k, v in self.masters.items()
            }
            self._copies[key] = copies
        return copies
