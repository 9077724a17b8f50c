"""Triton sliding-window attention against the fp64 oracle: forward, gradients, ring-buffer decode step.

On the CPU the kernels run under ``TRITON_INTERPRET=1`` (set below, before triton is imported) with
small shapes and 16×16 tiles, so a few dozen tokens already cross several blocks; ``-m gpu`` runs
large shapes with the real tiles on CUDA. Errors are relative, ``‖out − ref‖ / ‖ref‖`` over the whole
tensor, against the oracle evaluated in fp64 on the very same (rounded) inputs. Forward ``o`` / gradients:

- fp32: 1e-5 / 5e-5 ("ieee" fp32 dots, fp32 softmax and accumulators; measured ≤ 2e-7 / 2e-6);
- fp16: 2e-3 / 1e-2 (p and ds rounded to fp16 before their matmuls, outputs rounded; measured ≤ 3e-4 / 2.5e-3);
- bf16: 1.5e-2 / 6e-2 (the same roundings with 8 mantissa bits; measured ≤ 4e-3 / 4.3e-2).

Gradients get the looser bound because ``ds = p·(dp − δ)`` cancels, and δ = rowsum(o·do) uses the rounded
``o`` (as FlashAttention does); the worst cases are sharp softmaxes (scale 1 with d = 16: scores of std 4).

Outputs start as NaN (``triton_ops.POISON_OUTPUTS``), so an element no program writes fails the test;
unwritten ring-buffer slots hold NaN, so a step that reads one fails too.
"""

from __future__ import annotations

import os

os.environ.setdefault("TRITON_INTERPRET", "0" if os.environ.get("MIXERZOO_GPU_TESTS") else "1")

import pytest  # noqa: E402
import torch  # noqa: E402
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from mixerzoo.kernels.sliding_window import sliding_window_attention, sliding_window_attention_step  # noqa: E402
from mixerzoo.kernels.sliding_window import triton_ops as T  # noqa: E402
from mixerzoo.kernels.sliding_window.naive import sliding_window_reference  # noqa: E402

T.POISON_OUTPUTS = True
TOL = {torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 1.5e-2}
GRAD_TOL = {torch.float32: 5e-5, torch.float16: 1e-2, torch.bfloat16: 6e-2}
DTYPES = st.sampled_from([torch.float32, torch.bfloat16, torch.float16])
HEADS = st.sampled_from([(1, 1), (2, 1), (4, 2), (3, 3)])  # (H, Hkv)
INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"
cpu_only = pytest.mark.skipif(not INTERPRET, reason="interpreter tests (TRITON_INTERPRET=1, the default off-GPU)")
# no shrinking: under the interpreter it can take minutes; the failing example is printed as drawn
FEW = dict(
    deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, phases=(Phase.explicit, Phase.generate)
)


def rel_err(out: torch.Tensor, ref: torch.Tensor) -> float:
    assert out.shape == ref.shape, (out.shape, ref.shape)
    assert torch.isfinite(out).all(), "non-finite output (an element left unwritten, or an overflow)"
    return ((out.double() - ref.double()).norm() / ref.double().norm().clamp_min(1e-30)).item()


def assert_close(name: str, out: torch.Tensor, ref: torch.Tensor, dtype: torch.dtype, tol: dict = TOL) -> None:
    err = rel_err(out, ref)
    assert err <= tol[dtype], f"{name}: relative error {err:.3g} > {tol[dtype]:.3g} ({dtype})"


def randn(*shape, dtype, device, gen, scale=1.0):
    return (torch.randn(*shape, generator=gen) * scale).to(device=device, dtype=dtype)


def qkv_views(layout, B, Lq, Lk, H, Hkv, d, dv, dtype, device, gen, input_scale=1.0):
    """q ``[B, Lq, H, d]``, k ``[B, Lk, Hkv, d]``, v ``[B, Lk, Hkv, dv]`` that require grad, laid out as:

    - ``"contiguous"``: leaves;
    - ``"fused"``: head slices of one ``[B, L, H + 2·Hkv, d]`` buffer (the mixers' rotated q/k and projection views;
      needs Lq = Lk, d = dv);
    - ``"heads_first"``: ``[B, H, L, d]`` tensors transposed (head stride L·d, time stride d);
    - ``"last_strided"``: last-dim stride ≠ 1 (q, k every other element of a wider row; v a transposed
      ``[B, L, dv, Hkv]``): the host copies these."""
    if layout == "fused":
        assert Lq == Lk and d == dv, "one buffer for q, k, v"
        buf = randn(B, Lq, H + 2 * Hkv, d, dtype=dtype, device=device, gen=gen, scale=input_scale).requires_grad_()
        return buf[:, :, :H], buf[:, :, H : H + Hkv], buf[:, :, H + Hkv :]
    shapes = ((B, Lq, H, d), (B, Lk, Hkv, d), (B, Lk, Hkv, dv))
    scales = (input_scale, input_scale, 1.0)
    if layout == "contiguous":
        return tuple(
            randn(*sh, dtype=dtype, device=device, gen=gen, scale=sc).requires_grad_() for sh, sc in zip(shapes, scales)
        )
    if layout == "heads_first":
        return tuple(
            randn(b, h, L, e, dtype=dtype, device=device, gen=gen, scale=sc).requires_grad_().transpose(1, 2)
            for (b, L, h, e), sc in zip(shapes, scales)
        )
    assert layout == "last_strided", layout
    q, k = (randn(b, L, h, 2 * e, dtype=dtype, device=device, gen=gen, scale=input_scale).requires_grad_()[..., ::2]
            for b, L, h, e in shapes[:2])  # fmt: skip
    v = randn(B, Lk, dv, Hkv, dtype=dtype, device=device, gen=gen).requires_grad_().transpose(-1, -2)
    return q, k, v


def check_fwd_bwd(B, Lq, Lk, H, Hkv, d, dv, W, dtype, device, scale=None, seed=0, input_scale=1.0, layout="contiguous"):
    g = torch.Generator().manual_seed(seed)
    q, k, v = qkv_views(layout, B, Lq, Lk, H, Hkv, d, dv, dtype, device, g, input_scale)
    if layout != "contiguous":  # the layout under test reaches the op as a view
        assert not (q.is_contiguous() or k.is_contiguous() or v.is_contiguous())
    o = sliding_window_attention(q, k, v, W, scale=scale, backend="triton")
    assert o.dtype == dtype and o.shape == (B, Lq, H, dv)
    ref = sliding_window_reference(q, k, v, W, scale)
    assert_close("o", o, ref, dtype)
    do = randn(B, Lq, H, dv, dtype=dtype, device=device, gen=g)
    grads = torch.autograd.grad(o, (q, k, v), do)
    grads_ref = torch.autograd.grad(ref, (q, k, v), do.double())
    for name, gr, gr_ref, x in zip(("dq", "dk", "dv"), grads, grads_ref, (q, k, v)):
        assert gr.dtype == x.dtype and gr.shape == x.shape
        if gr_ref.abs().max() == 0:  # W = 1 (softmax over one key), or keys no query sees: zero up to rounding
            assert gr.double().norm() <= GRAD_TOL[dtype] * (1.0 + do.double().norm()), name
        else:
            assert_close(name, gr, gr_ref, dtype, GRAD_TOL)


@cpu_only
@settings(max_examples=24, **FEW)
@given(
    B=st.integers(1, 2),
    W=st.sampled_from([1, 2, 5, 16, 17, 40]),
    rel=st.sampled_from(["lt", "eq", "eq+1", "any"]),
    extra=st.sampled_from([0, 0, 3, 21]),
    heads=HEADS,
    d=st.sampled_from([8, 16, 24, 32]),
    dv=st.sampled_from([8, 16, 20]),
    dtype=DTYPES,
    scale=st.sampled_from([None, 0.05, 1.0]),
    data=st.data(),
)
def test_forward_backward_matches_oracle(B, W, rel, extra, heads, d, dv, dtype, scale, data):
    """L < W, L = W, L = W + 1 and L off the 16-tile; Lk = Lq + extra (a cache before the queries); grouped heads."""
    Lq = {"lt": max(1, W - 1), "eq": W, "eq+1": W + 1}.get(rel) or data.draw(st.sampled_from([1, 7, 31, 47]))
    H, Hkv = heads
    seed = data.draw(st.integers(0, 2**16))
    check_fwd_bwd(B, Lq, Lq + extra, H, Hkv, d, dv, W, dtype, "cpu", scale, seed)


@cpu_only
@pytest.mark.parametrize("fwd,dkdv,dq", [((32, 16), (16, 32), (32, 16)), ((16, 32), (32, 16), (16, 32))])
def test_rectangular_tiles(monkeypatch, fwd, dkdv, dq):
    """The GPU tiles are rectangular (BM != BN); the interpreter's default 16×16 would not exercise that."""
    tiles = {"fwd": fwd, "dkdv": dkdv, "dq": dq}
    monkeypatch.setattr(
        T, "_cfg", lambda kind, *_: dict(BM=tiles[kind][0], BN=tiles[kind][1], num_warps=4, num_stages=1)
    )
    check_fwd_bwd(2, 45, 58, 4, 2, 16, 24, 19, torch.float32, "cpu", seed=5)
    check_fwd_bwd(1, 70, 70, 2, 2, 16, 16, 40, torch.bfloat16, "cpu", seed=6)


@cpu_only
@pytest.mark.parametrize("align", [True, False])
@pytest.mark.parametrize("bm,bn,W", [(32, 16, 64), (16, 16, 40), (32, 16, 33), (16, 16, 16), (32, 32, 17)])
def test_aligned_key_blocks(monkeypatch, align, bm, bn, W):
    """The forward's aligned path (key blocks on multiples of BN; the interior ones unmasked, NU = (W − BM) // BN of
    them) against the general one; Lk − Lq = 0 and 2·BN take it (query blocks past the first W keys), 5 does not."""
    tiles = dict(BM=bm, BN=bn, num_warps=4, num_stages=1)
    monkeypatch.setattr(T, "_cfg", lambda kind, *_: dict(tiles, ALIGN=align) if kind == "fwd" else tiles)
    for extra in (0, 2 * bn, 5):
        check_fwd_bwd(1, 2 * W + 37, 2 * W + 37 + extra, 2, 1, 16, 8, W, torch.float32, "cpu", seed=W + extra)


@cpu_only
@pytest.mark.parametrize("fuse", [True, False])
def test_delta_in_the_dq_kernel_or_its_own(monkeypatch, fuse):
    """``FUSE_DELTA`` (the default): the dq kernel writes delta before the dk/dv kernel reads it; off: the delta kernel."""
    tiles = dict(BM=16, BN=16, num_warps=4, num_stages=1)
    monkeypatch.setattr(T, "_cfg", lambda kind, *_: dict(tiles, FUSE_DELTA=fuse) if kind == "dq" else tiles)
    check_fwd_bwd(2, 45, 45, 4, 2, 16, 24, 19, torch.float32, "cpu", seed=7)
    check_fwd_bwd(1, 40, 61, 2, 1, 16, 16, 7, torch.bfloat16, "cpu", seed=8)


@cpu_only
def test_large_scores_stay_finite_and_accurate():
    """Inputs ×6 with scale 1: scores in the hundreds; the online softmax must not overflow."""
    check_fwd_bwd(1, 37, 37, 2, 1, 16, 16, 9, torch.float32, "cpu", scale=1.0, seed=3, input_scale=6.0)


@cpu_only
@pytest.mark.parametrize("scale", [-1.0, 0.0])
def test_nonpositive_scales_scale_the_scores_first(scale):
    """A positive scale rides in the forward's exponent (``FOLD``: the unscaled maximum is the scaled one's
    argmax); zero and negative ones flip or flatten that order, so the kernel scales the scores first (with the
    maximum taken the other way, these scores of magnitude ~100 overflow the exponent). Against the oracle, on the
    aligned path (W ≥ BM + BN with the interpreter's 16×16 tiles) and the general one."""
    check_fwd_bwd(1, 70, 70, 2, 1, 16, 16, 40, torch.float32, "cpu", scale=scale, seed=11, input_scale=6.0)
    check_fwd_bwd(2, 23, 30, 2, 2, 16, 8, 9, torch.float32, "cpu", scale=scale, seed=12, input_scale=6.0)


@cpu_only
def test_window_covering_everything_equals_causal_attention():
    from mixerzoo.kernels.attention import attention_reference

    g = torch.Generator().manual_seed(0)
    q, k, v = (randn(1, 21, 2, 16, dtype=torch.float32, device="cpu", gen=g) for _ in range(3))
    o = sliding_window_attention(q, k, v, 1000, backend="triton")
    assert rel_err(o, attention_reference(q, k, v)) < 1e-5


def ring_from_prefix(k_all, v_all, P, W):
    """The ring buffer after P tokens: slot i % W holds token i for the last min(P, W) tokens; the rest NaN."""
    B, _, Hkv, d = k_all.shape
    ck = torch.full((B, W, Hkv, d), float("nan"), dtype=k_all.dtype, device=k_all.device)
    cv = torch.full((B, W, Hkv, v_all.shape[-1]), float("nan"), dtype=v_all.dtype, device=v_all.device)
    for i in range(max(0, P - W), P):
        ck[:, i % W], cv[:, i % W] = k_all[:, i], v_all[:, i]
    return ck, cv


def check_steps(
    B, H, Hkv, d, dv, W, P, steps, dtype, device, as_tensor, seed=0, layout="contiguous", early_reads=False
):
    """``layout="row"``: each step's q ``[B, H, d]``, k, v ``[B, Hkv, d]`` are head views of one projection row
    ``[B, (H + 2·Hkv)·d]`` (the mixers' decode step; d = dv); ``"last_strided"``: last-dim stride 2 (copied)."""
    g = torch.Generator().manual_seed(seed)
    n = P + steps
    if layout == "row":
        assert d == dv
        proj = randn(B, n, (H + 2 * Hkv) * d, dtype=dtype, device=device, gen=g)
        q_all, k_all, v_all = (x.unflatten(-1, (-1, d)) for x in proj.split([H * d, Hkv * d, Hkv * d], dim=-1))
    elif layout == "last_strided":
        q_all, k_all, v_all = (
            randn(B, n, h, 2 * e, dtype=dtype, device=device, gen=g)[..., ::2] for h, e in ((H, d), (Hkv, d), (Hkv, dv))
        )
    else:
        q_all = randn(B, n, H, d, dtype=dtype, device=device, gen=g)
        k_all = randn(B, n, Hkv, d, dtype=dtype, device=device, gen=g)
        v_all = randn(B, n, Hkv, dv, dtype=dtype, device=device, gen=g)
    ck, cv = ring_from_prefix(k_all, v_all, P, W)
    ptrs = (ck.data_ptr(), cv.data_ptr())
    for t in range(P, n):
        pos = torch.tensor(t, device=device) if as_tensor else t
        if layout != "contiguous":  # the step's inputs are views
            assert not (q_all[:, t].is_contiguous() or k_all[:, t].is_contiguous() or v_all[:, t].is_contiguous())
        o = sliding_window_attention_step(
            q_all[:, t], k_all[:, t], v_all[:, t], ck, cv, pos, backend="triton", early_reads=early_reads
        )
        ref = sliding_window_reference(q_all[:, t : t + 1], k_all[:, : t + 1], v_all[:, : t + 1], W)[:, 0]
        assert o.shape == (B, H, dv) and o.dtype == dtype
        assert_close(f"step at position {t}", o, ref, dtype)
    ck_ref, cv_ref = ring_from_prefix(k_all, v_all, n, W)
    assert torch.equal(ck.nan_to_num(7.0), ck_ref.nan_to_num(7.0)) and torch.equal(
        cv.nan_to_num(7.0), cv_ref.nan_to_num(7.0)
    )
    assert (ck.data_ptr(), cv.data_ptr()) == ptrs, "the ring buffer must be updated in place"


@cpu_only
@settings(max_examples=10, **FEW)
@given(
    B=st.integers(1, 3),
    heads=HEADS,
    d=st.sampled_from([8, 16, 24]),
    dv=st.sampled_from([8, 12, 16]),
    W=st.sampled_from([1, 3, 8, 20]),
    start=st.sampled_from(["empty", "partial", "full"]),
    steps=st.integers(1, 4),
    dtype=DTYPES,
    as_tensor=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_step_matches_oracle_and_fills_the_ring(B, heads, d, dv, W, start, steps, dtype, as_tensor, seed):
    """Start with an empty ring (position 0), a partly written one (position < W − 1) or a full one that wraps."""
    P = {"empty": 0, "partial": W // 2, "full": 2 * W + 1}[start]
    H, Hkv = heads
    check_steps(B, H, Hkv, d, dv, W, P, steps, dtype, "cpu", as_tensor, seed)


@cpu_only
@pytest.mark.parametrize(
    "cfg", [dict(S=1, BW=4, num_warps=1, PREFETCH=True), dict(S=2, BW=2, num_warps=1, PREFETCH=True)]
)
def test_step_prefetch(monkeypatch, cfg):
    """The decode loop that loads chunk j + 1 before reducing chunk j (the last load is past the split: masked)."""
    monkeypatch.setattr(T, "_step_cfg", lambda *a: cfg)
    for W, P in ((9, 20), (8, 3), (1, 0)):
        check_steps(2, 4, 2, 16, 8, W, P, 3, torch.float32, "cpu", as_tensor=True, seed=W)


@cpu_only
@pytest.mark.parametrize(
    "cfg",
    [None, dict(S=1, BW=4, num_warps=1, PREFETCH=True), dict(S=3, BW=2, num_warps=1, PREFETCH=True),
     dict(S=2, BW=4, num_warps=4)],
)  # fmt: skip
def test_step_dense_loads_stop_at_the_last_written_slot(monkeypatch, cfg):
    """DENSE (rings of DENSE_MIN_W slots or more: the attn mixer's KV cache) loads only the written slots past each
    split's first chunk (which goes out before pos is known); forced on here for small rings: empty, partly written,
    just full and wrapped, with NaN in every unwritten slot, which must never reach the output."""
    monkeypatch.setattr(T, "DENSE_MIN_W", 1)
    if cfg is not None:
        monkeypatch.setattr(T, "_step_cfg", lambda *a: cfg)
    for W, P in ((13, 0), (13, 5), (13, 12), (13, 30), (1, 0)):
        for early_reads in (False, True):  # the first chunk after or before the PDL wait (the mixers': before)
            check_steps(
                2, 4, 2, 16, 8, W, P, 3, torch.float32, "cpu", as_tensor=True, seed=W + P, early_reads=early_reads
            )


def rotated(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """fp64 RoPE of ``x [B, L, h, d]`` at positions 0 … L − 1 (half-split, ``cos``/``sin`` ``[L, 1, r/2]``)."""
    half = cos.shape[-1]
    out = x.double().clone()
    x1, x2 = out[..., :half].clone(), out[..., half : 2 * half].clone()
    c, s_ = cos.double(), sin.double()
    out[..., :half], out[..., half : 2 * half] = x1 * c - x2 * s_, x2 * c + x1 * s_
    return out


@cpu_only
@settings(max_examples=8, **FEW)
@given(
    heads=HEADS,
    d=st.sampled_from([8, 7, 16]),
    W=st.sampled_from([5, 13]),
    P=st.sampled_from([0, 3, 17]),
    cfg=st.sampled_from([None, dict(S=3, BW=2, num_warps=4), dict(S=1, BW=4, num_warps=1, PREFETCH=True)]),
    dense=st.booleans(),
    dtype=DTYPES,
    seed=st.integers(0, 2**16),
)
def test_step_rotates_q_and_k_in_the_kernel(monkeypatch, heads, d, W, P, cfg, dense, dtype, seed):
    """``rope=(cos, sin)``: q and k arrive unrotated and the kernel turns them by the angles of the position (rows of
    ``rotary_table``). Against fp64 attention over keys and queries rotated in fp64; the ring holds the rotated keys
    (the new one rounded to the cache's dtype, as the mixers' own rotation leaves it)."""
    if cfg is not None:
        monkeypatch.setattr(T, "_step_cfg", lambda *a: cfg)
    if dense:
        monkeypatch.setattr(T, "DENSE_MIN_W", 1)
    check_rope_steps(2, *heads, d, W, P, 3, dtype, "cpu", seed)


def check_rope_steps(B, H, Hkv, d, W, P, steps, dtype, device, seed):
    """Steps P … P + steps − 1 with ``rope=(cos, sin)`` from a ring of P rotated keys (int and tensor positions in
    turn), against fp64 attention over q and k rotated in fp64; the ring's new slot holds ``rotate(k)``."""
    from mixerzoo.mixers.rotary import rotary_table, rotate

    n = P + steps
    g = torch.Generator().manual_seed(seed)
    q_all, k_all, v_all = (randn(B, n, h, d, dtype=dtype, device=device, gen=g) for h in (H, Hkv, Hkv))
    cos, sin = rotary_table(0, n + 5, d, device)
    q_rot, k_rot = rotated(q_all, cos[:n], sin[:n]), rotated(k_all, cos[:n], sin[:n])
    ck, cv = ring_from_prefix(k_rot.to(dtype), v_all, P, W)
    for t in range(P, n):
        pos = torch.tensor(t, device=device) if t % 2 else t
        o = sliding_window_attention_step(
            q_all[:, t], k_all[:, t], v_all[:, t], ck, cv, pos, backend="triton", rope=(cos, sin)
        )
        ref = sliding_window_reference(q_rot[:, t : t + 1], k_rot[:, : t + 1], v_all[:, : t + 1].double(), W)[:, 0]
        assert_close(f"rotated step at position {t}", o, ref, dtype)
        k_new = rotate(k_all[:, t], cos[t], sin[t])  # the mixers' rotation, in k's dtype
        torch.testing.assert_close(ck[:, t % W], k_new, atol=TOL[dtype], rtol=TOL[dtype])


@cpu_only
def test_step_rope_errors_and_positions_past_the_table():
    """A rope table of the wrong dtype or width, or an int position past it, is a clear error; a tensor position past
    it (unknown to the host) makes the Triton step's output NaN, never a silently wrong one."""
    from mixerzoo.mixers.rotary import rotary_table

    q, k, v = torch.randn(1, 2, 8), torch.randn(1, 2, 8), torch.randn(1, 2, 8)
    ck, cv = torch.zeros(1, 4, 2, 8), torch.zeros(1, 4, 2, 8)
    cos, sin = rotary_table(0, 6, 8, "cpu")
    step = lambda pos, rope: sliding_window_attention_step(q, k, v, ck, cv, pos, backend="triton", rope=rope)  # noqa: E731
    with pytest.raises(ValueError, match="past rope's table of 6 positions"):
        step(6, (cos, sin))
    with pytest.raises(ValueError, match=r"fp32 \[N, 1, 4\]"):
        step(0, (cos.double(), sin.double()))
    with pytest.raises(ValueError, match=r"must be \[N, 1, 4\]"):
        step(0, rotary_table(0, 6, 6, "cpu"))
    with pytest.raises(ValueError, match="pair of tensors"):
        step(0, cos)
    assert torch.isfinite(step(torch.tensor(5), (cos, sin))).all()
    assert torch.isnan(step(torch.tensor(6), (cos, sin))).all()


@cpu_only
def test_step_rope_torch_backend_equals_triton():
    """The torch step rotates with ``mixers.rotary.rotate`` before attending: the same outputs and ring as Triton's."""
    from mixerzoo.mixers.rotary import rotary_table

    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, h, 8, generator=g) for h in (4, 2, 2))
    cos, sin = rotary_table(0, 16, 8, "cpu")
    rings = {b: (torch.zeros(2, 5, 2, 8), torch.zeros(2, 5, 2, 8)) for b in ("torch", "triton")}
    outs = {
        b: sliding_window_attention_step(q, k, v, *rings[b], torch.tensor(9), backend=b, rope=(cos, sin)) for b in rings
    }
    torch.testing.assert_close(outs["torch"], outs["triton"], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(rings["torch"][0], rings["triton"][0], atol=1e-6, rtol=1e-6)


@cpu_only
@pytest.mark.parametrize("early_reads", [False, True])
@pytest.mark.parametrize("cfg", [dict(S=3, BW=2, num_warps=4), dict(S=2, BW=2, num_warps=1, PREFETCH=True)])
def test_step_splits_combine_in_one_launch_and_reset_their_counters(monkeypatch, cfg, early_reads):
    """S > 1: the last split of each (sequence, kv head) to arrive combines the partials, so a step is one launch,
    and resets its arrival counter to zero for the next step (or the next layer, which shares the counters)."""
    launches = []
    fast = T._launch.fast
    monkeypatch.setattr(T._launch, "fast", lambda kernel: launches.append(kernel.__name__) or fast(kernel))
    monkeypatch.setattr(T, "_step_cfg", lambda *a: cfg)
    steps = 3
    check_steps(2, 4, 2, 16, 8, 9, 4, steps, torch.float32, "cpu", as_tensor=True, seed=3, early_reads=early_reads)
    assert launches == ["sliding_window_step_kernel"] * steps
    counters = T._launch.arrival_counters("sliding_window_step", torch.device("cpu"), 2 * 2)
    assert torch.count_nonzero(counters) == 0, f"arrival counters left set: {counters[:8].tolist()}"


@cpu_only
@pytest.mark.parametrize("n_prog", [528, 1])
@pytest.mark.parametrize("W,d", [(1, 128), (9, 128), (130, 128), (37, 64), (20, 256)])
def test_step_gpu_default_config(monkeypatch, n_prog, W, d):
    """The GPU's default decode config (`_step_cfg_gpu`) for this W and head dim, run under the interpreter: one warp,
    chunks of 1K/d slots with the next chunk prefetched (≥ 528 programs; W=130 is 17 chunks, as the attn mixer's
    cache-wide window), or 4 warps with the window split in S parts (few programs; W=130 → S=3 here)."""
    cfg = T._step_cfg_gpu(n_prog, 1, W, d)
    if n_prog >= 528:
        assert cfg == dict(S=1, BW=min(T.next_pow2(W), max(4, 1024 // d)), num_warps=1, PREFETCH=True)
    monkeypatch.setattr(T, "_step_cfg", lambda *a: cfg)
    P = {1: 0, 9: 20, 130: 131, 37: 12, 20: 45}[W]  # empty, wrapped, wrapped by one, partial, wrapped
    check_steps(2, 4, 2, d, d, W, P, 2, torch.float32, "cpu", as_tensor=True, seed=W)


@cpu_only
def test_prefill_then_decode_equals_full_forward():
    """Forward over a prefix + a cache-aware forward of the rest (Lk > Lq) ≡ one forward over everything."""
    g = torch.Generator().manual_seed(1)
    q, k, v = (randn(2, 45, 4, 16, dtype=torch.float32, device="cpu", gen=g) for _ in range(3))
    k, v = k[:, :, :2].contiguous(), v[:, :, :2].contiguous()
    full = sliding_window_attention(q, k, v, 13, backend="triton")
    tail = sliding_window_attention(q[:, 30:], k, v, 13, backend="triton")
    assert rel_err(tail, full[:, 30:]) < 1e-6


@cpu_only
def test_custom_ops_pass_opcheck_and_compile():
    g = torch.Generator().manual_seed(0)
    q = randn(1, 19, 2, 16, dtype=torch.float32, device="cpu", gen=g).requires_grad_()
    k = randn(1, 23, 1, 16, dtype=torch.float32, device="cpu", gen=g).requires_grad_()
    v = randn(1, 23, 1, 8, dtype=torch.float32, device="cpu", gen=g).requires_grad_()
    torch.library.opcheck(torch.ops.mixerzoo.sliding_window_fwd, (q, k, v, 5, 0.25))
    ck, cv = torch.randn(1, 6, 1, 16), torch.randn(1, 6, 1, 8)
    step_args = (q[:, 0].detach(), k[:, 0].detach(), v[:, 0].detach(), ck, cv, torch.tensor(8), 0, 0.25)
    torch.library.opcheck(torch.ops.mixerzoo.sliding_window_step, step_args)

    def f(q, k, v):  # the Triton entry point (the public dispatcher's importlib call breaks fullgraph)
        return T.sliding_window_triton(q, k, v, 5).square().sum()

    out = torch.compile(f, backend="aot_eager", fullgraph=True)(q, k, v)
    ref = f(q, k, v)
    assert torch.allclose(out, ref)
    assert all(torch.allclose(a, b) for a, b in zip(torch.autograd.grad(out, (q, k)), torch.autograd.grad(ref, (q, k))))


@cpu_only
@pytest.mark.parametrize(
    "layout,B,L,H,Hkv,d,dv,W,dtype",
    [
        ("fused", 2, 37, 4, 2, 16, 16, 19, torch.float32),  # grouped kv heads; L off the 16-tile
        ("fused", 1, 11, 3, 1, 24, 24, 16, torch.bfloat16),  # L < W; d padded to 32
        ("heads_first", 2, 45, 4, 2, 16, 8, 13, torch.float32),  # head stride L·d, time stride d
        ("heads_first", 1, 9, 2, 2, 16, 16, 40, torch.float16),  # L < W
        ("last_strided", 1, 23, 4, 2, 16, 8, 7, torch.float32),  # copied by the host
    ],
)
def test_strided_views_match_oracle(layout, B, L, H, Hkv, d, dv, W, dtype):
    """q, k, v as the mixers pass them (views, no copy): read through their strides, forward and gradients; a last
    dim of stride ≠ 1 is copied first. Lk > Lq for the layouts that allow it (a cache before the queries)."""
    Lk = L if layout == "fused" else L + 5
    check_fwd_bwd(B, L, Lk, H, Hkv, d, dv, W, dtype, "cpu", seed=L + W, layout=layout)


def copies(fn, *args) -> tuple[list[str], object]:
    """The aten ops that copy a tensor (``.contiguous()`` of a view) while ``fn(*args)`` runs, and its result. Not
    ``copy_``: the interpreter's launches write their outputs back with it."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        out = fn(*args)
    return sorted({e.name for e in prof.events() if e.name in ("aten::clone", "aten::contiguous")}), out


@cpu_only
def test_views_reach_the_kernels_without_copies():
    """The forward, backward and decode launches on the mixers' views copy nothing; a last dim of stride ≠ 1 is the
    one case copied (the control: the check sees copies)."""
    g = torch.Generator().manual_seed(9)
    for layout in ("fused", "heads_first", "last_strided"):
        q, k, v = (x.detach() for x in qkv_views(layout, 1, 17, 17, 2, 1, 16, 16, torch.float32, "cpu", g))
        do = randn(1, 17, 2, 16, dtype=torch.float32, device="cpu", gen=g)
        seen, (o, lse) = copies(T._fwd, q, k, v, 5, 0.25)
        seen_bwd, _ = copies(T._bwd, do, q, k, v, o, lse, 5, 0.25)
        assert (seen != [] and seen_bwd != []) == (layout == "last_strided"), (layout, seen, seen_bwd)
        assert (seen + seen_bwd == []) == (layout != "last_strided"), (layout, seen, seen_bwd)
    row = randn(2, 4 * 16, dtype=torch.float32, device="cpu", gen=g)
    q1, k1, v1 = (x.unflatten(-1, (-1, 16)) for x in row.split([32, 16, 16], dim=-1))
    ck, cv = torch.zeros(2, 6, 1, 16), torch.zeros(2, 6, 1, 16)
    assert copies(T.sliding_window_step_triton, q1, k1, v1, ck, cv, 3)[0] == []
    ck8 = torch.zeros(2, 6, 1, 8)
    assert copies(T.sliding_window_step_triton, q1[..., ::2], k1[..., ::2], v1, ck8, cv, 4)[0] != []


@cpu_only
@pytest.mark.parametrize("layout", ["row", "last_strided"])
@pytest.mark.parametrize("W,P,cfg", [(8, 3, None), (5, 12, dict(S=1, BW=4, num_warps=1, PREFETCH=True))])
def test_step_reads_views_of_the_projection_row(monkeypatch, layout, W, P, cfg):
    """The decode step's q, k, v as head views of one projection row (grouped kv heads), partial and wrapped rings;
    the output and the ring contents against the oracle."""
    if cfg is not None:
        monkeypatch.setattr(T, "_step_cfg", lambda *a: cfg)
    check_steps(2, 4, 2, 16, 16, W, P, 2, torch.float32, "cpu", as_tensor=P > 5, seed=W + P, layout=layout)


@cpu_only
def test_custom_ops_with_views_pass_opcheck_and_compile():
    """The custom ops on view inputs: opcheck compares the fake outputs' shapes and strides with the real ones
    (contiguous; dq, dk, dv too, for a dense permuted q), and torch.compile traces the mixers' slicing."""
    g = torch.Generator().manual_seed(4)
    q, k, v = (
        randn(1, h, 19, e, dtype=torch.float32, device="cpu", gen=g).transpose(1, 2)
        for h, e in ((4, 16), (2, 16), (2, 8))
    )
    torch.library.opcheck(
        torch.ops.mixerzoo.sliding_window_fwd, (q.requires_grad_(), k.requires_grad_(), v.requires_grad_(), 5, 0.25)
    )
    q, k, v = q.detach(), k.detach(), v.detach()
    o, lse = torch.ops.mixerzoo.sliding_window_fwd(q, k, v, 5, 0.25)
    torch.library.opcheck(torch.ops.mixerzoo.sliding_window_bwd, (torch.randn_like(o), q, k, v, o, lse, 5, 0.25))
    row = randn(2, 4 * 16, dtype=torch.float32, device="cpu", gen=g)
    q1, k1, v1 = (x.unflatten(-1, (-1, 16)) for x in row.split([32, 16, 16], dim=-1))
    ck, cv = torch.randn(2, 6, 1, 16), torch.randn(2, 6, 1, 16)
    torch.library.opcheck(torch.ops.mixerzoo.sliding_window_step, (q1, k1, v1, ck, cv, torch.tensor(8), 0, 0.25))
    buf = randn(1, 19, 4, 16, dtype=torch.float32, device="cpu", gen=g).requires_grad_()

    def f(buf):
        return T.sliding_window_triton(buf[:, :, :2], buf[:, :, 2:3], buf[:, :, 3:], 5).square().sum()

    out = torch.compile(f, backend="aot_eager", fullgraph=True)(buf)
    ref = f(buf)
    assert torch.allclose(out, ref)
    assert torch.allclose(torch.autograd.grad(out, buf)[0], torch.autograd.grad(ref, buf)[0])


def zero_fills(backward) -> list[str]:
    """The aten ops that fill zeros while ``backward()`` runs (a materialized gradient of an unused output is one)."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        backward()
    return sorted({e.name for e in prof.events() if e.name in ("aten::zeros", "aten::zeros_like", "aten::zero_")})


@cpu_only
def test_eager_path_equals_the_custom_op_and_fills_no_zeros():
    """The eager autograd.Function (no dispatcher) against the registered custom op (torch.compile's path): the same
    o and gradients, bit for bit, with grouped heads and Lk > Lq; its backward fills no zero gradient (the custom op's
    autograd materializes one for the unused lse: ``aten::zeros`` in its list)."""
    g = torch.Generator().manual_seed(3)
    q = randn(2, 21, 4, 16, dtype=torch.float32, device="cpu", gen=g).requires_grad_()
    k = randn(2, 26, 2, 16, dtype=torch.float32, device="cpu", gen=g).requires_grad_()
    v = randn(2, 26, 2, 8, dtype=torch.float32, device="cpu", gen=g).requires_grad_()
    do = randn(2, 21, 4, 8, dtype=torch.float32, device="cpu", gen=g)
    o = T.sliding_window_triton(q, k, v, 7, scale=0.3)
    o_op, _ = torch.ops.mixerzoo.sliding_window_fwd(q, k, v, 7, 0.3)
    assert o.grad_fn is not None and "SlidingWindow" in type(o.grad_fn).__name__
    assert torch.equal(o, o_op)
    with torch.no_grad():
        assert torch.equal(T.sliding_window_triton(q, k, v, 7, scale=0.3), o_op)
    grads, grads_op = [], []
    assert zero_fills(lambda: grads.extend(torch.autograd.grad(o, (q, k, v), do))) == []
    assert zero_fills(lambda: grads_op.extend(torch.autograd.grad(o_op, (q, k, v), do))) != []  # the check works
    for name, gr, gr_op in zip("qkv", grads, grads_op):
        assert torch.equal(gr, gr_op), f"d{name}"


@cpu_only
def test_launch_plans_follow_a_patched_tile_function(monkeypatch):
    """The cached launch plans are keyed by the tile function: a patched `_cfg` gets its own plans (results equal)."""
    g = torch.Generator().manual_seed(5)
    q, k, v = (randn(1, 40, 2, 16, dtype=torch.float32, device="cpu", gen=g) for _ in range(3))
    o = T.sliding_window_triton(q, k, v, 9)
    seen = []
    monkeypatch.setattr(T, "_cfg", lambda kind, *_: seen.append(kind) or dict(BM=32, BN=16, num_warps=4, num_stages=1))
    assert rel_err(T.sliding_window_triton(q, k, v, 9), o) < 1e-6
    assert seen == ["fwd"]


@cpu_only
def test_errors_say_what_to_do():
    q = torch.randn(1, 4, 1, 300)
    with pytest.raises(ValueError, match="head dims up to 256"):
        T.sliding_window_triton(q, q, q, 2)
    q1, c = torch.randn(1, 1, 16), torch.randn(1, 4, 1, 16)
    with pytest.raises(ValueError, match="position must be"):
        T.sliding_window_step_triton(q1, q1, q1, c, c.clone(), torch.tensor(2.0))
    with pytest.raises(ValueError, match="position must be"):
        T.sliding_window_step_triton(q1, q1, q1, c, c.clone(), -1)


# ---------------------------------------------------------------------------------------------- GPU
gpu = pytest.mark.gpu
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@gpu
@needs_cuda
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
@pytest.mark.parametrize(
    "B,Lq,Lk,H,Hkv,d,dv,W",
    [
        (2, 1000, 1000, 4, 4, 64, 64, 64),
        (1, 4099, 4099, 4, 2, 128, 128, 128),
        (2, 777, 1500, 8, 2, 96, 96, 512),
        (1, 300, 300, 2, 1, 256, 256, 33),
        (1, 513, 513, 2, 2, 40, 72, 1),
        (1, 60, 60, 2, 1, 16, 16, 128),
    ],
)
def test_gpu_forward_backward(B, Lq, Lk, H, Hkv, d, dv, W, dtype):
    check_fwd_bwd(B, Lq, Lk, H, Hkv, d, dv, W, dtype, "cuda", seed=Lq)


@gpu
@needs_cuda
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
@pytest.mark.parametrize("W,H,Hkv,d", [(64, 16, 16, 128), (512, 8, 2, 64), (7, 4, 1, 80)])
def test_gpu_step(W, H, Hkv, d, dtype):
    check_steps(4, H, Hkv, d, d, W, W - 3, 6, dtype, "cuda", as_tensor=True)


@gpu
@needs_cuda
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
@pytest.mark.parametrize(
    "B,W,H,Hkv,d,P", [(1, 2048, 16, 16, 64, 1100), (4, 64, 8, 2, 80, 70), (132, 2048, 4, 4, 64, 9)]
)
def test_gpu_step_rope(B, W, H, Hkv, d, P, dtype):
    """RoPE in the kernel on the GPU: the attn layer's cache-wide window at batch 1 (16 splits), a wrapped GQA ring
    of an odd-sized head, and ≥ 528 programs (the one-warp prefetching loop)."""
    check_rope_steps(B, H, Hkv, d, W, P, 4, dtype, "cuda", seed=B + W)


@gpu
@needs_cuda
@pytest.mark.parametrize("W,d", [(64, 128), (2048, 64), (37, 256)])
def test_gpu_step_one_warp_default(W, d):
    """B·HKV = 528: the default one-warp prefetching config, incl. the attn mixer's cache-wide window (2048 slots)."""
    check_steps(33, 16, 16, d, d, W, W + 5, 3, torch.bfloat16, "cuda", as_tensor=True, seed=W)


@gpu
@needs_cuda
@pytest.mark.parametrize("B", [33, 1])
@pytest.mark.parametrize("P", [0, 300, 1500, 2050])
def test_gpu_step_dense_loop_stops_at_the_last_written_slot(B, P):
    """The attn mixer's KV cache (2,048 slots, DENSE) empty, partly written and wrapped: on the GPU the chunk loop runs
    only up to the last written slot (DYN). B=33: one warp per (sequence, head); B=1: the window split in 16 parts, most
    of them past the last written slot while the cache fills (no loop at all)."""
    check_steps(B, 16, 16, 64, 64, 2048, P, 2, torch.bfloat16, "cuda", as_tensor=True, seed=P)


@gpu
@needs_cuda
@pytest.mark.parametrize(
    "kind,bd,i", [(kind, bd, i) for (kind, bd), cfgs in T.TILE_CANDIDATES.items() for i in range(len(cfgs))]
)
def test_gpu_tile_candidates(monkeypatch, kind, bd, i):
    """Every tile the benchmark's sweep may pick, at its head dim, W = 64 and 128, Lk − Lq = 0 and 64. The benchmark's
    H, W and lengths divisible by 16 (Triton specializes on that): its sweep then finds these kernels compiled."""
    default = T._cfg
    cand = T.TILE_CANDIDATES[(kind, bd)][i]
    monkeypatch.setattr(T, "_cfg", lambda k, *a: dict(cand) if k == kind else default(k, *a))
    for W, extra in ((64, 0), (128, 64), (128, 0)):
        check_fwd_bwd(1, 1024, 1024 + extra, 16, 16, bd, bd, W, torch.bfloat16, "cuda", seed=W + i)


@gpu
@needs_cuda
@pytest.mark.parametrize("i", range(len(T.STEP_CANDIDATES)))
@pytest.mark.parametrize("W,H,Hkv,d", [(64, 16, 16, 128), (37, 8, 2, 64)])
def test_gpu_step_candidates(monkeypatch, i, W, H, Hkv, d):
    monkeypatch.setattr(T, "_step_cfg", lambda *a: T.STEP_CANDIDATES[i])
    check_steps(4, H, Hkv, d, d, W, W - 3, 6, torch.bfloat16, "cuda", as_tensor=True, seed=i)


@gpu
@needs_cuda
def test_gpu_step_in_cuda_graph():
    """Capture the step with the position as a device tensor advanced inside the graph; replay = eager."""
    B, H, Hkv, d, W, n = 8, 8, 4, 64, 16, 40
    g = torch.Generator().manual_seed(0)
    q_all, k_all, v_all = (randn(B, n, h, d, dtype=torch.bfloat16, device="cuda", gen=g) for h in (H, Hkv, Hkv))
    ck = torch.zeros(B, W, Hkv, d, dtype=torch.bfloat16, device="cuda")
    cv = torch.zeros_like(ck)
    q_in, k_in, v_in = q_all[:, 0].clone(), k_all[:, 0].clone(), v_all[:, 0].clone()
    pos = torch.zeros((), dtype=torch.int64, device="cuda")
    T.sliding_window_step_triton(q_in, k_in, v_in, ck.clone(), cv.clone(), pos)  # compile outside the capture
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        o = T.sliding_window_step_triton(q_in, k_in, v_in, ck, cv, pos)
        pos.add_(1)
    for t in range(n):
        q_in.copy_(q_all[:, t])
        k_in.copy_(k_all[:, t])
        v_in.copy_(v_all[:, t])
        graph.replay()
        ref = sliding_window_reference(q_all[:, t : t + 1], k_all[:, : t + 1], v_all[:, : t + 1], W)[:, 0]
        assert_close(f"graph step {t}", o, ref, torch.bfloat16)
    assert pos.item() == n


@gpu
@needs_cuda
def test_gpu_torch_compile_inductor():
    g = torch.Generator().manual_seed(0)
    q = randn(2, 1024, 8, 64, dtype=torch.bfloat16, device="cuda", gen=g).requires_grad_()
    k = randn(2, 1024, 2, 64, dtype=torch.bfloat16, device="cuda", gen=g).requires_grad_()
    v = randn(2, 1024, 2, 64, dtype=torch.bfloat16, device="cuda", gen=g).requires_grad_()

    def f(q, k, v):
        return (T.sliding_window_triton(q * 1.5, k, v, 64).float() ** 2).sum()

    out = torch.compile(f, fullgraph=True)(q, k, v)
    ref = f(q, k, v)
    assert torch.allclose(out, ref, rtol=1e-3)
    for a, b in zip(torch.autograd.grad(out, (q, k, v)), torch.autograd.grad(ref, (q, k, v))):
        assert rel_err(a, b) < 1e-2


@gpu
@needs_cuda
def test_gpu_step_pdl_chain_equals_plain_launches(monkeypatch):
    """Programmatic dependent launch (``_launch.STEP_PDL`` 1 and 2; sm_90+): 24 steps back to back in one
    CUDA graph over one ring (W=8: it wraps three times), each reading the slot the step before wrote, give
    bit-equal outputs and rings with and without it."""
    from mixerzoo.kernels import _launch

    if torch.cuda.get_device_capability()[0] < 9:
        pytest.skip("programmatic dependent launch needs sm_90+")
    B, H, Hkv, d, W, n = 64, 16, 16, 128, 8, 24
    g = torch.Generator().manual_seed(1)
    q_all, k_all, v_all = (randn(B, n, h, d, dtype=torch.bfloat16, device="cuda", gen=g) for h in (H, Hkv, Hkv))
    res = {}
    for pdl in (0, 1, 2):
        monkeypatch.setattr(_launch, "STEP_PDL", pdl)
        ck = torch.zeros(B, W, Hkv, d, dtype=torch.bfloat16, device="cuda")
        cv = torch.zeros_like(ck)
        T.sliding_window_step_triton(q_all[:, 0], k_all[:, 0], v_all[:, 0], ck.clone(), cv.clone(), 0)  # compile
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            os_ = [T.sliding_window_step_triton(q_all[:, t], k_all[:, t], v_all[:, t], ck, cv, t) for t in range(n)]
        ck.zero_()
        cv.zero_()
        graph.replay()
        torch.cuda.synchronize()
        res[pdl] = (torch.stack(os_, 1), ck, cv)
    ref = sliding_window_reference(q_all, k_all, v_all, W)
    err = ((res[2][0].double() - ref).norm() / ref.norm()).item()
    assert err < 2e-2, f"PDL chain against fp64: relative error {err:.3g}"
    for mode in (1, 2):
        for a, b in zip(res[0], res[mode]):
            assert torch.equal(a, b), mode
