"""The torch backends of every kernel against their fp64 einsum oracles, and input validation."""

from __future__ import annotations

import pytest
import torch
from _helpers import rel_err
from hypothesis import given
from hypothesis import strategies as st

from mixerzoo import registry
from mixerzoo.feature_maps import feature_map
from mixerzoo.kernels import (
    attention,
    attention_reference,
    gated_short_conv,
    gated_short_conv_reference,
    gated_short_conv_step,
    linear_attention,
    linear_attention_reference,
    linear_attention_step,
    sliding_window_attention,
    sliding_window_attention_step,
    sliding_window_reference,
)

FEATURE_MAPS = registry.list_names(kind="feature_map")
TOL = {torch.float32: 2e-5, torch.bfloat16: 3e-2, torch.float16: 5e-3}  # relative error vs the fp64 oracle
DTYPES = st.sampled_from([torch.float32, torch.bfloat16, torch.float16])
LENGTHS = st.sampled_from([1, 2, 7, 13, 63, 64, 65, 97, 131])


def make_fm(name: str, d_prime: int):
    opts = {"max_len": 4096} if name == "cosformer" else {}
    return feature_map(name, d_prime, **opts)


@pytest.mark.parametrize("name", FEATURE_MAPS)
@given(B=st.integers(1, 2), L=LENGTHS, H=st.integers(1, 3), d=st.integers(1, 9), dv=st.integers(1, 11),
       dtype=DTYPES, scale=st.sampled_from([0.3, 1.0, 3.0]), seed=st.integers(0, 2**16))  # fmt: skip
def test_linear_attention_matches_the_fp64_oracle(name, B, L, H, d, dv, dtype, scale, seed):
    g = torch.Generator().manual_seed(seed)
    fm = make_fm(name, d)
    normalize = fm.nonnegative
    q, k = (
        (scale * torch.randn(B, L, H, d, generator=g)).to(dtype),
        (scale * torch.randn(B, L, H, d, generator=g)).to(dtype),
    )
    v = torch.randn(B, L, H, dv, generator=g).to(dtype)
    o, (kv, z) = linear_attention(q, k, v, fm, normalize=normalize, output_final_state=True, backend="torch")
    ref, (kv_ref, z_ref) = linear_attention_reference(q, k, v, fm, normalize=normalize)
    assert o.dtype == dtype and kv.dtype == torch.float32 and z.dtype == torch.float32
    assert rel_err(o, ref) < TOL[dtype]
    assert rel_err(kv, kv_ref) < 2e-5 and rel_err(z, z_ref) < 2e-5


@pytest.mark.parametrize("name", FEATURE_MAPS)
@given(L=st.integers(2, 140), cut=st.integers(1, 139), seed=st.integers(0, 2**16))
def test_linear_attention_split_and_resume_equals_one_call(name, L, cut, seed):
    cut = min(cut, L - 1)
    g = torch.Generator().manual_seed(seed)
    fm = make_fm(name, 4)
    norm = fm.nonnegative
    q, k, v = (
        torch.randn(2, L, 2, 4, generator=g),
        torch.randn(2, L, 2, 4, generator=g),
        torch.randn(2, L, 2, 5, generator=g),
    )
    full, state_full = linear_attention(q, k, v, fm, normalize=norm, output_final_state=True, backend="torch")
    a, state = linear_attention(
        q[:, :cut], k[:, :cut], v[:, :cut], fm, normalize=norm, output_final_state=True, backend="torch"
    )
    b, state = linear_attention(q[:, cut:], k[:, cut:], v[:, cut:], fm, normalize=norm, initial_state=state,
                                output_final_state=True, offset=cut, backend="torch")  # fmt: skip
    assert rel_err(torch.cat([a, b], 1), full) < 1e-5
    assert rel_err(state[0], state_full[0]) < 1e-5


@pytest.mark.parametrize("name", FEATURE_MAPS)
def test_linear_attention_steps_equal_the_parallel_form(name):
    fm = make_fm(name, 5)
    norm = fm.nonnegative
    B, L, H, dv = 2, 23, 3, 4
    q, k, v = torch.randn(B, L, H, 5), torch.randn(B, L, H, 5), torch.randn(B, L, H, dv)
    ref, _ = linear_attention_reference(q, k, v, fm, normalize=norm)
    state = (torch.zeros(B, H, fm.out_dim, dv), torch.zeros(B, H, fm.out_dim))
    outs = []
    for t in range(L):
        o, state = linear_attention_step(
            q[:, t], k[:, t], v[:, t], state, fm, normalize=norm, offset=t, backend="torch"
        )
        outs.append(o)
    assert rel_err(torch.stack(outs, 1), ref) < 1e-5


def test_linear_attention_never_builds_a_quadratic_or_per_token_state(monkeypatch):
    """O(L) memory: no tensor with an L×L block or with L·D·dv elements per (B, H)."""
    B, L, H, d, dv = 1, 1024, 1, 16, 32
    D = feature_map("taylor", d).out_dim
    created = []
    original = torch.Tensor.__matmul__

    def spy(a, b):
        out = original(a, b)
        created.append(out.numel())
        return out

    monkeypatch.setattr(torch.Tensor, "__matmul__", spy)
    linear_attention(
        torch.randn(B, L, H, d), torch.randn(B, L, H, d), torch.randn(B, L, H, dv), "taylor", backend="torch"
    )
    assert created and max(created) < min(L * L, L * D * dv) // 4


@given(B=st.integers(1, 2), Lq=st.integers(1, 70), extra=st.sampled_from([0, 0, 1, 5, 40]), H=st.sampled_from([1, 2, 4]),
       groups=st.sampled_from([1, 2]), d=st.integers(1, 12), W=st.sampled_from([1, 2, 3, 8, 16, 64]), dtype=DTYPES,
       seed=st.integers(0, 2**16))  # fmt: skip
def test_sliding_window_matches_the_fp64_oracle(B, Lq, extra, H, groups, d, W, dtype, seed):
    Hkv = max(1, H // groups)
    g = torch.Generator().manual_seed(seed)
    Lk = Lq + extra
    q = torch.randn(B, Lq, H, d, generator=g).to(dtype)
    k, v = torch.randn(B, Lk, Hkv, d, generator=g).to(dtype), torch.randn(B, Lk, Hkv, d + 1, generator=g).to(dtype)
    out = sliding_window_attention(q, k, v, W, backend="torch")
    assert out.dtype == dtype
    assert rel_err(out, sliding_window_reference(q, k, v, W)) < TOL[dtype]


@pytest.mark.parametrize("W", [1, 4, 9])
def test_sliding_window_steps_over_the_ring_buffer_equal_the_parallel_form(W):
    B, L, H, Hkv, d = 2, 3 * W + 2, 4, 2, 6
    q, k, v = torch.randn(B, L, H, d), torch.randn(B, L, Hkv, d), torch.randn(B, L, Hkv, d)
    ref = sliding_window_reference(q, k, v, W)
    ck = torch.full((B, W, Hkv, d), float("nan"))  # unwritten slots must never be read
    cv = torch.full((B, W, Hkv, d), float("nan"))
    outs = [sliding_window_attention_step(q[:, t], k[:, t], v[:, t], ck, cv, t, backend="torch") for t in range(L)]
    assert rel_err(torch.stack(outs, 1), ref) < 1e-5


@given(Lq=st.integers(1, 40), extra=st.sampled_from([0, 3, 17]), H=st.sampled_from([1, 2, 4]), d=st.integers(1, 16),
       seed=st.integers(0, 2**16))  # fmt: skip
def test_full_attention_matches_the_fp64_oracle(Lq, extra, H, d, seed):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(2, Lq, H, d, generator=g)
    k, v = torch.randn(2, Lq + extra, 1, d, generator=g), torch.randn(2, Lq + extra, 1, d, generator=g)
    assert rel_err(attention(q, k, v, backend="torch"), attention_reference(q, k, v)) < 1e-5


@given(L=st.integers(1, 40), H=st.sampled_from([1, 2, 4]), d=st.integers(1, 16), sdpa=st.sampled_from(["flash", "math"]),
       seed=st.integers(0, 2**16))  # fmt: skip
def test_attention_on_a_pinned_sdpa_kernel_matches_the_fp64_oracle(L, H, d, sdpa, seed):
    g = torch.Generator().manual_seed(seed)  # the CPU has SDPA's flash and math kernels
    q, k, v = (torch.randn(2, L, H, d, generator=g) for _ in range(3))
    assert rel_err(attention(q, k, v, backend="torch", sdpa=sdpa), attention_reference(q, k, v)) < 1e-5


def test_a_pinned_sdpa_kernel_that_cannot_run_is_a_clear_error():
    q = torch.randn(1, 6, 2, 8)
    cases = [
        (dict(sdpa="flash2"), "sdpa must be 'auto' or one of 'flash', 'cudnn', 'efficient', 'math'"),
        (dict(sdpa="cudnn"), "cudnn kernel runs on CUDA only"),
        (dict(sdpa="efficient"), "efficient kernel runs on CUDA only"),
        (dict(sdpa="flash", backend="xformers"), "xformers"),  # not installed here: the backend check says so
    ]
    for kwargs, message in cases:
        with pytest.raises((ValueError, RuntimeError), match=message):
            attention(q, q, q, **kwargs)
    with pytest.raises(ValueError, match="flash kernel takes no mask, so it cannot continue from a KV cache"):
        attention(q[:, :2], q, q, sdpa="flash")  # 2 queries after 4 cached keys need the bottom-right mask
    assert attention(q[:, :2], q, q, sdpa="math").shape == (1, 2, 2, 8)  # the math kernel takes it


@given(B=st.integers(1, 3), L=LENGTHS, C=st.integers(1, 17), K=st.integers(1, 5), bias=st.booleans(),
       with_state=st.booleans(), dtype=DTYPES, seed=st.integers(0, 2**16))  # fmt: skip
def test_gated_short_conv_matches_the_fp64_oracle(B, L, C, K, bias, with_state, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    u, gate = torch.randn(B, L, C, generator=g).to(dtype), torch.randn(B, L, C, generator=g).to(dtype)
    w = torch.randn(C, K, generator=g).to(dtype)
    b = torch.randn(C, generator=g).to(dtype) if bias else None
    s0 = torch.randn(B, K - 1, C, generator=g).to(dtype) if with_state else None
    y, s = gated_short_conv(u, gate, w, b, initial_state=s0, output_final_state=True, backend="torch")
    y_ref, s_ref = gated_short_conv_reference(u, gate, w, b, s0)
    assert y.dtype == dtype and rel_err(y, y_ref) < TOL[dtype]
    torch.testing.assert_close(s.double(), s_ref, rtol=0, atol=0)  # the state is the inputs themselves


@pytest.mark.parametrize("K", [1, 2, 3, 4])
def test_gated_short_conv_steps_equal_the_parallel_form(K):
    B, L, C = 2, 11, 6
    u, gate, w, b = torch.randn(B, L, C), torch.randn(B, L, C), torch.randn(C, K), torch.randn(C)
    ref, _ = gated_short_conv_reference(u, gate, w, b)
    state = torch.zeros(B, K - 1, C)
    outs = [gated_short_conv_step(u[:, t], gate[:, t], state, w, b, backend="torch") for t in range(L)]
    assert rel_err(torch.stack(outs, 1), ref) < 1e-6


# --- bad input gets a clear error that says what and how to fix ------------------------------------------------------
q4, v4 = torch.randn(2, 5, 3, 4), torch.randn(2, 5, 3, 6)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: linear_attention(q4[0], q4, v4, "taylor"), ValueError, r"q must be \[B, L, H, d′\] \(4 dims\)"),
        (lambda: linear_attention(q4, q4, v4[:, :4], "taylor"), ValueError, "v must be"),
        (lambda: linear_attention(q4, q4[..., :3], v4, "taylor"), ValueError, "q and k must have the same shape"),
        (lambda: linear_attention(q4.long(), q4, v4, "taylor"), TypeError, "supported: float32, bfloat16, float16"),
        (lambda: linear_attention(q4, q4.half(), v4, "taylor"), TypeError, "use one dtype"),
        (lambda: linear_attention(q4, q4, v4, "talyor"), registry.RegistryError, "did you mean 'taylor'"),
        (lambda: linear_attention(q4, q4, v4, "performer"), ValueError, "a name is not enough"),
        (lambda: linear_attention(q4, q4, v4, feature_map("taylor", 8)), ValueError, "d′ is 4 but must be 8"),
        (lambda: linear_attention(q4, q4, v4, "identity"), ValueError, "normalize=False"),
        (lambda: linear_attention(q4, q4, v4, "relu", initial_state=(torch.zeros(2, 3, 4, 6),)), TypeError, "tuple"),
        (lambda: linear_attention(q4, q4, v4, "relu", initial_state=(torch.zeros(2, 3, 5, 6), torch.zeros(2, 3, 4))),
         ValueError, r"state kv must have shape \[2, 3, 4, 6\]"),
        (lambda: linear_attention(q4, q4, v4, "relu", initial_state=(torch.zeros(2, 3, 4, 6).half(), torch.zeros(2, 3, 4))),
         TypeError, "must be float32"),
        (lambda: linear_attention(q4, q4, v4, "taylor", backend="cuda"), ValueError, "backend must be one of"),
        (lambda: sliding_window_attention(q4, q4, q4, 0), ValueError, "window must be a positive int"),
        (lambda: sliding_window_attention(q4, q4[:, :3], q4[:, :3], 4), ValueError, "need 1 <= Lq <= Lk"),
        (lambda: sliding_window_attention(q4, q4[:, :, :2], q4[:, :, :2], 4), ValueError, "multiple of key/value heads"),
        (lambda: attention(q4, q4[..., :2], q4[..., :2]), ValueError, "k/v must be"),
        (lambda: gated_short_conv(q4[0], q4[0], torch.randn(3, 3)), ValueError, r"weight must be \[C, K\] with C=4"),
        (lambda: gated_short_conv(q4[0], q4[0, :4], torch.randn(4, 3)), ValueError, "u and gate must both be"),
        (lambda: gated_short_conv_step(q4[0, 0], q4[0, 0], torch.zeros(5, 1, 4), torch.randn(4, 3)), ValueError,
         r"state must be \[B, K−1, C\] = \[3, 2, 4\]"),
    ],
)  # fmt: skip
def test_bad_input_gets_an_error_that_says_the_fix(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_explicit_triton_on_the_cpu_without_the_interpreter_says_how(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    u = torch.randn(2, 5, 3)
    with pytest.raises(RuntimeError, match="set TRITON_INTERPRET=1"):
        gated_short_conv(u, u, torch.randn(3, 3), backend="triton")


def test_explicit_triton_without_a_kernel_says_so(monkeypatch):
    import importlib

    la = importlib.import_module("mixerzoo.kernels.linear_attention")  # the package, not the function
    monkeypatch.setattr(la, "_triton_ops", lambda: None)
    with pytest.raises(RuntimeError, match="no Triton kernel is available for this op yet; use backend='torch'"):
        linear_attention(q4, q4, v4, "taylor", backend="triton")
    assert linear_attention(q4, q4, v4, "taylor", backend="auto").shape == v4.shape  # auto never picks it
