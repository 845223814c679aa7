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


def fast_bfloat16_unit(device: torch.device) -> str | None:
    """What makes the network faster in bfloat16 than in float32 here, or None: AMX
    (Intel Sapphire Rapids and later: 0.49x the time of float32) or AVX512-BF16 (AMD Zen 4
    and later, Intel Cooper Lake: 0.60x on an AMD EPYC), measured in docs/performance.md.
    Elsewhere bfloat16 runs emulated, slower than float32."""
    if device.type != "cpu":
        # On an H200, VGG-19 forward and backward ran no faster in bfloat16 than in float32
        # (whose convolutions use TF32 there): 3.4 against 3.6 ms at 512 px.
        return None
    allowed = _onednn_cap_allows()
    if "AMX" in allowed and _cpu_has("_is_amx_tile_supported"):
        return "AMX"
    if "AVX512-BF16" in allowed and _cpu_has("_is_avx512_bf16_supported"):
        return "AVX512-BF16"
    return None


def _cpu_has(check: str) -> bool:
    found = getattr(torch.cpu, check, None)
    return bool(found()) if found is not None else False


def _onednn_cap_allows() -> set[str]:
    """Which bfloat16 units oneDNN may use, as capped by ONEDNN_MAX_CPU_ISA (AVX2 and the
    like: none, then bfloat16 runs emulated and slow, as on a CPU without them). The
    benchmarks use this cap to stand in for the ordinary CPUs that most users have
    (docs/performance.md)."""
    cap = (os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA") or "").upper()
    if cap in ("", "ALL", "DEFAULT") or "AMX" in cap:
        return {"AMX", "AVX512-BF16"}
    # oneDNN's ISAs from AVX512_CORE_BF16 up (AVX512_CORE_FP16, AVX10_*) include bfloat16.
    if "BF16" in cap or "FP16" in cap or "AVX10" in cap:
        return {"AVX512-BF16"}
    return set()


def resolve_precision(name: str, device: torch.device) -> Precision:
    """The precision that `name` (auto, float32 or bfloat16) means on `device`."""
    if name == "auto":
        return "float32" if fast_bfloat16_unit(device) is None else "bfloat16"
    if name not in ("float32", "bfloat16"):
        raise OptionError(f"unknown precision '{name}'; use auto, float32 or bfloat16")
    return "bfloat16" if name == "bfloat16" else "float32"
