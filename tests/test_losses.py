import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from styleshift.core.losses import ContentLoss, RangeLoss, StyleLoss, TVLoss, gram_matrix, mix_grams


def test_gram_matches_definition():
    f = torch.randn(1, 4, 3, 5)
    flat = f[0].reshape(4, 15)
    assert torch.allclose(gram_matrix(f)[0], flat @ flat.T / 15, atol=1e-6)


def test_gram_does_not_depend_on_size_for_tiled_features():
    f = torch.rand(1, 8, 6, 6)
    assert torch.allclose(gram_matrix(f), gram_matrix(f.repeat(1, 1, 3, 2)), atol=1e-5)


@settings(max_examples=25, deadline=None)
@given(st.floats(0.01, 100.0))
def test_losses_are_scale_free(scale):
    """The same relative mismatch costs the same whatever the activations' magnitude."""
    torch.manual_seed(0)
    target, other = torch.rand(1, 8, 6, 6), torch.rand(1, 8, 6, 6)
    base_c = ContentLoss(target)(other)
    base_s = StyleLoss(gram_matrix(target))(other)
    assert torch.allclose(ContentLoss(target * scale)(other * scale), base_c, rtol=1e-4)
    scaled = StyleLoss(gram_matrix(target * scale))(other * scale)
    assert torch.allclose(scaled, base_s, rtol=1e-3)


def test_losses_are_zero_at_target_and_positive_elsewhere():
    f = torch.rand(1, 8, 6, 6)
    assert ContentLoss(f)(f) == 0 and StyleLoss(gram_matrix(f))(f) < 1e-10
    assert ContentLoss(f)(f + 0.1) > 0 and StyleLoss(gram_matrix(f))(f * 2) > 0


def test_mix_grams_is_weighted_mean():
    a, b = torch.ones(1, 2, 2), torch.zeros(1, 2, 2)
    assert torch.allclose(mix_grams([a, b], [3, 1]), torch.full((1, 2, 2), 0.75))


def test_tv_is_zero_for_flat_and_grows_with_noise():
    flat = torch.full((1, 3, 16, 16), 0.5)
    assert TVLoss()(flat) == 0
    assert TVLoss()(flat + 0.1 * torch.randn_like(flat)) > TVLoss()(
        flat + 0.01 * torch.randn_like(flat)
    )


def test_range_loss_is_zero_inside_0_1_and_grows_with_the_excess():
    inside = torch.rand(1, 3, 8, 8)
    assert float(RangeLoss()(inside)) == 0.0
    little, more = inside.clone(), inside.clone()
    little[..., 0, 0], more[..., 0, 0] = 1.1, 1.5
    assert 0 < float(RangeLoss()(little)) < float(RangeLoss()(more))
    below = inside.clone()
    below[..., 0, 0] = -0.1
    assert float(RangeLoss()(below)) == pytest.approx(float(RangeLoss()(little)))
