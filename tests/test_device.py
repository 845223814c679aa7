"""--device auto picks CUDA, then MPS, then the CPU; a missing device is named."""

from __future__ import annotations

import pytest
import torch

from styleshift.device import resolve_device, resolve_precision
from styleshift.errors import OptionError


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
    ("cap", "amx", "expected"),
    [
        (None, True, "bfloat16"),
        ("AVX2", True, "float32"),
        ("avx512_core_amx", True, "bfloat16"),
        ("ALL", True, "bfloat16"),
        (None, False, "float32"),
    ],
)
def test_auto_precision_follows_amx_and_a_onednn_cap(
    monkeypatch: pytest.MonkeyPatch, cap: str | None, amx: bool, expected: str
) -> None:
    # A cap below AMX makes this CPU stand in for an ordinary one, bfloat16 then being slow.
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)
    if cap is None:
        monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    else:
        monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", cap)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx, raising=False)
    assert resolve_precision("auto", torch.device("cpu")) == expected
