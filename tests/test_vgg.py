import numpy as np
import pytest
import torch

from styleshift.core.errors import OptionError
from styleshift.core.vgg import LAYERS, VGGFeatures, check_layers

REFERENCE_LAYERS = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu4_2", "relu5_1"]


def test_reproduces_reference_activations(state_dict, reference):
    """Kernel layout, RGB order and preprocessing all show in these channel means."""
    ref = np.load(reference / "vgg19_tubingen224.npz")
    model = VGGFeatures(state_dict, REFERENCE_LAYERS, pooling="max")
    x = torch.from_numpy(ref["input_rgb_uint8"]).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        out = model(x)
    for name in REFERENCE_LAYERS:
        assert tuple(out[name].shape) == tuple(ref[f"{name}_shape"])
        got = out[name].mean((2, 3))[0].numpy()
        want = ref[f"{name}_channel_mean"]
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-3 * np.abs(want).max())


def test_truncates_after_deepest_layer(state_dict):
    model = VGGFeatures(state_dict, ["relu3_1", "relu1_1"])
    assert list(model.net)[-1] == "relu3_1"
    assert not any(p.requires_grad for p in model.parameters())
    assert not model.training


def test_everything_lives_on_the_weights_device(state_dict):
    """Callers pass weights already on a GPU and never call .to(): the input's mean must
    follow them ('meta' stands in for a GPU here)."""
    on_meta = {k: v.to("meta") for k, v in state_dict.items()}
    model = VGGFeatures(on_meta, ["relu2_1"])
    assert {t.device.type for t in (*model.parameters(), *model.buffers())} == {"meta"}


def test_requested_conv_output_is_not_overwritten_by_relu(state_dict):
    model = VGGFeatures(state_dict, ["conv1_1", "relu1_1"])
    out = model(torch.rand(1, 3, 32, 32))
    assert (out["conv1_1"] < 0).any()
    assert torch.equal(out["relu1_1"], out["conv1_1"].clamp_min(0))


def test_pooling_choice_changes_features(state_dict):
    x = torch.rand(1, 3, 32, 32)
    avg = VGGFeatures(state_dict, ["relu2_1"], pooling="avg")(x)["relu2_1"]
    mx = VGGFeatures(state_dict, ["relu2_1"], pooling="max")(x)["relu2_1"]
    assert avg.shape == mx.shape and not torch.allclose(avg, mx)


def test_unknown_layer_suggests_closest():
    with pytest.raises(OptionError, match="did you mean 'relu4_2'"):
        check_layers(["relu4-2"], "content layers")
    assert len(LAYERS) == 16 * 2 + 5


def test_bfloat16_features_come_back_in_float32_close_to_full_precision(state_dict):
    x = torch.rand(1, 3, 64, 48, generator=torch.Generator().manual_seed(0))
    full = VGGFeatures(state_dict, REFERENCE_LAYERS)
    half = VGGFeatures(state_dict, REFERENCE_LAYERS, dtype=torch.bfloat16)
    with torch.no_grad():
        want, got = full(x), half(x)
    for name in REFERENCE_LAYERS:
        assert got[name].dtype == torch.float32
        error = float((got[name] - want[name]).norm() / want[name].norm())
        # Measured 0.0028-0.0043: bfloat16 did run (float32 would give 0), and closely.
        assert 1e-4 < error < 0.03, name
