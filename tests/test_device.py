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
