"""Where and in what precision the network runs."""

from __future__ import annotations

import os
from typing import Literal

import torch

from .errors import OptionError

Device = Literal["auto", "cpu", "cuda", "mps"]
Precision = Literal["auto", "float32", "bfloat16"]


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    available = {
        "cpu": True,
        "cuda": torch.cuda.is_available(),
        "mps": torch.backends.mps.is_available(),
    }
    if name not in available:
        raise OptionError(f"unknown device '{name}'; use auto, cpu, cuda or mps")
    if not available[name]:
        raise OptionError(f"device '{name}' is not available here; use --device auto or cpu")
    return torch.device(name)


def has_fast_bfloat16(device: torch.device) -> bool:
    """Whether the network runs faster in bfloat16 than in float32 here: on CPUs with
    AMX (Intel Sapphire Rapids and later), measured in docs/performance.md."""
    if device.type != "cpu":
        # On an H200, VGG-19 forward and backward ran no faster in bfloat16 than in float32
        # (whose convolutions use TF32 there): 3.4 against 3.6 ms at 512 px.
        return False
    if _onednn_cap_excludes_amx():
        return False
    check = getattr(torch.cpu, "_is_amx_tile_supported", None)
    return bool(check()) if check is not None else False


def _onednn_cap_excludes_amx() -> bool:
    """Whether oneDNN was told not to use AMX (ONEDNN_MAX_CPU_ISA=AVX2 and the like):
    then bfloat16 runs emulated and slow, as on a CPU without it. The benchmarks use this
    cap to stand in for the ordinary CPUs that most users have (docs/performance.md)."""
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA")
    if not cap:
        return False
    cap = cap.upper()
    return cap not in ("ALL", "DEFAULT") and "AMX" not in cap


def resolve_precision(name: str, device: torch.device) -> Precision:
    """The precision that `name` (auto, float32 or bfloat16) means on `device`."""
    if name == "auto":
        return "bfloat16" if has_fast_bfloat16(device) else "float32"
    if name not in ("float32", "bfloat16"):
        raise OptionError(f"unknown precision '{name}'; use auto, float32 or bfloat16")
    return "bfloat16" if name == "bfloat16" else "float32"
