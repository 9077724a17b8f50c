"""Feature maps: widths, closed-form kernels, non-negativity, Performer's estimator, CosFormer's identity."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import mixerzoo
from mixerzoo import registry
from mixerzoo.feature_maps import CosFormer, Performer, feature_map

FEATURE_MAPS = registry.list_names(kind="feature_map")


def make(name: str, d_prime: int, **options):
    if name == "cosformer":
        options.setdefault("max_len", 512)
    return feature_map(name, d_prime, **options)


def test_the_paper_feature_maps_are_registered():
    assert {"taylor", "poselu", "relu", "performer", "cosformer", "identity", "square"} <= set(FEATURE_MAPS)


@pytest.mark.parametrize("name", FEATURE_MAPS)
@pytest.mark.parametrize("d_prime", [1, 5, 16])
def test_out_dim_is_the_real_width_and_features_are_fp32(name, d_prime):
    fm = make(name, d_prime)
    x = torch.randn(2, 7, 3, d_prime, dtype=torch.bfloat16)
    phi = fm(x, torch.arange(7).unsqueeze(-1))
    assert phi.shape == (2, 7, 3, fm.out_dim)
    assert phi.dtype == torch.float32
    assert torch.isfinite(phi).all()


@pytest.mark.parametrize("name", FEATURE_MAPS)
def test_non_negative_maps_have_non_negative_kernels(name):
    """What normalization needs: every φ(q)·φ(k) >= 0, so the denominator is positive."""
    fm = make(name, 8)
    phi = fm(10 * torch.randn(64, 8, dtype=torch.float64), torch.arange(64))
    gram = phi @ phi.T  # all pairs φ(x_i)·φ(x_j)
    if fm.nonnegative:
        assert (gram >= -1e-9 * gram.abs().max()).all()
        if name != "taylor":  # elementwise maps: every feature itself
            assert (phi >= 0).all()
    else:  # a map that declares itself signed really is (so the flag is not stale)
        assert (gram < 0).any()


def test_taylor_width_matches_the_design():
    assert feature_map("taylor", 16).out_dim == 153
    assert feature_map("taylor", 8).out_dim == 1 + 8 + 36


@given(d=st.integers(1, 32), scale=st.sampled_from([0.1, 1.0, 4.0]), seed=st.integers(0, 2**16))
def test_taylor_dot_product_is_the_second_order_series(d, scale, seed):
    g = torch.Generator().manual_seed(seed)
    q, k = (
        scale * torch.randn(5, d, generator=g, dtype=torch.float64),
        scale * torch.randn(5, d, generator=g, dtype=torch.float64),
    )
    fm = feature_map("taylor", d)
    s = (q * k).sum(-1) / math.sqrt(d)
    expected = 1 + s + s * s / 2
    got = (fm(q) * fm(k)).sum(-1)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(fm.kernel(q, k), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", ["relu", "identity", "square"])
def test_closed_forms_of_the_elementwise_maps(name):
    fm = make(name, 6)
    q, k = torch.randn(10, 6, dtype=torch.float64), torch.randn(10, 6, dtype=torch.float64)
    torch.testing.assert_close((fm(q) * fm(k)).sum(-1), fm.kernel(q, k), rtol=1e-12, atol=1e-12)


def test_poselu_is_elu_plus_one():
    x = torch.linspace(-5, 5, 101, dtype=torch.float64).reshape(-1, 1)
    torch.testing.assert_close(feature_map("poselu", 1)(x), torch.nn.functional.elu(x) + 1)


def test_performer_is_unbiased_for_the_softmax_kernel():
    """The mean of φ(q)·φ(k) over many draws of W approaches exp(q·k/√d′)."""
    d = 4
    g = torch.Generator().manual_seed(1)
    q, k = (
        0.5 * torch.randn(3, d, generator=g, dtype=torch.float64),
        0.5 * torch.randn(3, d, generator=g, dtype=torch.float64),
    )
    fm = Performer(d, mixerzoo.feature_maps.performer.PerformerConfig(m=64))
    estimates = []
    for _ in range(300):
        fm.redraw_features(g)
        estimates.append((fm(q) * fm(k)).sum(-1))
    mean = torch.stack(estimates).mean(0)
    target = torch.exp((q * k).sum(-1) / math.sqrt(d))
    assert ((mean - target).abs() / target).max() < 0.03


def test_performer_rows_are_block_orthogonal():
    w = feature_map("performer", 8, m=16).projection.double()  # two 8×8 blocks
    for block in (w[:8], w[8:]):
        gram = block @ block.T
        off = gram - torch.diag(torch.diagonal(gram))
        assert off.abs().max() < 1e-4


def test_performer_draw_is_one_persistent_buffer_shared_by_q_and_k():
    model = mixerzoo.build("performer16[m=32]", d_model=32, n_heads=2)
    buffers = [n for n, _ in model.named_buffers() if n.endswith("projection")]
    assert len(buffers) == 1  # one draw per layer, used for q and for k
    assert any(k.endswith("projection") for k in model.state_dict())  # saved in checkpoints


def test_performer_redraws_only_on_its_schedule():
    fm = feature_map("performer", 4, redraw=3)
    fm.train()
    first = fm.projection.clone()
    fm.maybe_redraw()
    fm.maybe_redraw()
    assert torch.equal(fm.projection, first)
    fm.maybe_redraw()
    assert not torch.equal(fm.projection, first)
    fm.eval()
    second = fm.projection.clone()
    for _ in range(6):
        fm.maybe_redraw()
    assert torch.equal(fm.projection, second)  # never in eval mode


@given(i=st.integers(0, 99), j=st.integers(0, 99), seed=st.integers(0, 1000))
def test_cosformer_dot_product_is_the_cosine_reweighting(i, j, seed):
    g = torch.Generator().manual_seed(seed)
    q, k = torch.randn(6, generator=g, dtype=torch.float64), torch.randn(6, generator=g, dtype=torch.float64)
    fm = CosFormer(6, mixerzoo.feature_maps.cosformer.CosFormerConfig(max_len=100))
    got = (fm(q, torch.tensor(i)) * fm(k, torch.tensor(j))).sum(-1)
    expected = (q.clamp_min(0) * k.clamp_min(0)).sum() * math.cos(math.pi * (i - j) / 200)
    torch.testing.assert_close(got, expected.to(got.dtype), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(fm.kernel(q, k, torch.tensor(i), torch.tensor(j)), expected, rtol=1e-12, atol=1e-12)


def test_cosformer_refuses_positions_past_its_horizon():
    fm = feature_map("cosformer", 4, max_len=10)
    with pytest.raises(ValueError, match="past its horizon max_len=10"):
        fm(torch.randn(12, 4), torch.arange(12))
    with pytest.raises(ValueError, match="absolute positions"):
        fm(torch.randn(3, 4))


def test_feature_map_factory_errors_name_the_fix():
    with pytest.raises(registry.RegistryError, match="did you mean 'taylor'"):
        feature_map("talyor", 16)
    with pytest.raises(ValueError, match=r"has no option\(s\) \['n'\]; its options are: m, redraw"):
        feature_map("performer", 16, n=3)
    with pytest.raises(ValueError, match="d_prime must be a positive int"):
        feature_map("taylor", 0)
    with pytest.raises(ValueError, match="expects inputs whose last dim is d′=4"):
        feature_map("relu", 4)(torch.randn(3, 5))


def test_performer_draw_stays_fp32_when_the_model_is_cast():
    model = mixerzoo.build("performer8[m=16]", d_model=16, n_heads=2).to(torch.bfloat16)
    fm = model.blocks[0].mixer.feature_map
    assert fm.projection.dtype == torch.float32
    assert model.blocks[0].mixer.qkv_proj.weight.dtype == torch.bfloat16
    assert torch.isfinite(model(torch.randn(1, 5, 16, dtype=torch.bfloat16))).all()
