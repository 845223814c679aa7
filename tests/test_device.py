"""--device auto picks CUDA, then MPS, then the CPU; a missing device is named."""

from __future__ import annotations

import pytest
import torch

from styleshift.core.device import fast_bfloat16_unit, resolve_device, resolve_precision
from styleshift.core.errors import OptionError


@pytest.mark.parametrize(
    ("cuda", "mps", "expected"),
    [(True, True, "cuda"), (False, True, "mps"), (False, False, "cpu"), (True, False, "cuda")],
)
def test_auto_prefers_cuda_then_mps_then_cpu(
    monkeypatch: pytest.MonkeyPatch, cuda: bool, mps: bool, expected: str
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)
    assert resolve_device("auto").type == expected


def test_an_unavailable_or_unknown_device_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(OptionError, match="device 'cuda' is not available here"):
        resolve_device("cuda")
    with pytest.raises(OptionError, match="unknown device 'tpu'"):
        resolve_device("tpu")


def test_precision_names() -> None:
    cpu = torch.device("cpu")
    assert resolve_precision("float32", cpu) == "float32"
    with pytest.raises(OptionError, match="unknown precision 'half'"):
        resolve_precision("half", cpu)


@pytest.mark.parametrize(
    ("cap", "amx", "avx512_bf16", "expected"),
    [
        (None, True, True, "AMX"),
        ("AVX2", True, True, None),
        ("avx512_core_amx", True, True, "AMX"),
        ("ALL", True, True, "AMX"),
        ("AVX512_CORE_BF16", True, True, "AVX512-BF16"),  # AMX capped, AVX512-BF16 left
        ("AVX512_CORE", True, True, None),
        (None, False, True, "AVX512-BF16"),  # AMD Zen 4 and later
        ("AVX2", False, True, None),
        (None, False, False, None),  # AVX2 laptops, older servers
    ],
)
def test_auto_precision_follows_the_bfloat16_units_and_a_onednn_cap(
    monkeypatch: pytest.MonkeyPatch,
    cap: str | None,
    amx: bool,
    avx512_bf16: bool,
    expected: str | None,
) -> None:
    # A cap below them makes this CPU stand in for an ordinary one, bfloat16 being slow.
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)
    if cap is None:
        monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    else:
        monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", cap)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16, raising=False)
    cpu = torch.device("cpu")
    assert fast_bfloat16_unit(cpu) == expected
    assert resolve_precision("auto", cpu) == ("float32" if expected is None else "bfloat16")
    assert fast_bfloat16_unit(torch.device("cuda")) is None
