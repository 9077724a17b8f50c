"""Triton gated short convolution against the fp64 oracle: forward, gradients, state, decode step.

On the CPU the kernels run under ``TRITON_INTERPRET=1`` (set below, before triton is imported) with
small shapes; ``-m gpu`` runs larger ones on CUDA. Errors are relative: ``‖out − ref‖ / ‖ref‖`` over
the whole tensor, against the oracle evaluated in fp64 on the very same (rounded) inputs, so the
tolerance only covers the kernel's own rounding:

- fp32: 2e-5 (fp32 accumulation, exact loads);
- fp16: 4e-3 (one rounding of every output to fp16, unit roundoff 4.9e-4, plus fp32 sums);
- bf16: 2e-2 (one rounding to bf16, unit roundoff 3.9e-3: the norm-wise error lands near 2e-3–5e-3).

Outputs start as NaN (``triton_ops.POISON_OUTPUTS``), so an element no program writes fails the test.
"""

from __future__ import annotations

import os

os.environ.setdefault("TRITON_INTERPRET", "0" if os.environ.get("MIXERZOO_GPU_TESTS") else "1")

import pytest  # noqa: E402
import torch  # noqa: E402
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from mixerzoo.kernels.short_conv import gated_short_conv, gated_short_conv_step  # noqa: E402
from mixerzoo.kernels.short_conv import triton_ops as T  # noqa: E402
from mixerzoo.kernels.short_conv.naive import gated_short_conv_reference  # noqa: E402

T.POISON_OUTPUTS = True
TOL = {torch.float32: 2e-5, torch.float16: 4e-3, torch.bfloat16: 2e-2}
DTYPES = st.sampled_from([torch.float32, torch.bfloat16, torch.float16])
# no shrinking: under the interpreter it can take minutes; the failing example is printed as drawn
FEW = dict(
    deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, phases=(Phase.explicit, Phase.generate)
)
CPU_SETTINGS = settings(max_examples=12, **FEW)
INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"
cpu_only = pytest.mark.skipif(not INTERPRET, reason="interpreter tests (TRITON_INTERPRET=1, the default off-GPU)")


def rel_err(out: torch.Tensor, ref: torch.Tensor) -> float:
    assert out.shape == ref.shape, (out.shape, ref.shape)
    assert torch.isfinite(out).all(), "non-finite output (an element left unwritten, or an overflow)"
    return ((out.double() - ref.double()).norm() / ref.double().norm().clamp_min(1e-30)).item()


def assert_close(name: str, out: torch.Tensor, ref: torch.Tensor, dtype: torch.dtype) -> None:
    err = rel_err(out, ref)
    assert err <= TOL[dtype], f"{name}: relative error {err:.3g} > {TOL[dtype]:.3g} ({dtype})"


def make(B, L, C, K, dtype, device, has_bias, has_state, scale=1.0, seed=0):
    g = torch.Generator().manual_seed(seed)

    def r(*shape, s=1.0):
        return (torch.randn(*shape, generator=g) * s).to(device=device, dtype=dtype).requires_grad_()

    u, gate = r(B, L, C, s=scale), r(B, L, C)
    w, b = r(C, K, s=K**-0.5), (r(C) if has_bias else None)
    h0 = r(B, K - 1, C, s=scale) if has_state else None
    return u, gate, w, b, h0


def check_fwd_bwd(B, L, C, K, dtype, device, has_bias, has_state, scale=1.0, seed=0):
    u, gate, w, b, h0 = make(B, L, C, K, dtype, device, has_bias, has_state, scale, seed)
    y, ht = gated_short_conv(u, gate, w, b, initial_state=h0, output_final_state=True, backend="triton")
    assert y.dtype == dtype and ht.dtype == dtype and ht.shape == (B, K - 1, C)
    y_ref, ht_ref = gated_short_conv_reference(u, gate, w, b, h0)
    assert_close("y", y, y_ref, dtype)
    if K > 1:
        assert torch.equal(ht.double(), ht_ref), "final state must be the last K−1 inputs exactly"
    dy = torch.randn_like(y)
    dht = torch.randn_like(ht)
    inputs = [t for t in (u, gate, w, b, h0) if t is not None]
    names = [n for n, t in zip(("u", "gate", "weight", "bias", "state"), (u, gate, w, b, h0)) if t is not None]
    loss = (y.float() * dy.float()).sum() + (ht.float() * dht.float()).sum()
    grads = torch.autograd.grad(loss, inputs)
    loss_ref = (y_ref * dy.double()).sum() + (ht_ref * dht.double()).sum()
    grads_ref = torch.autograd.grad(loss_ref, inputs)
    for name, gr, gr_ref in zip(names, grads, grads_ref):
        assert gr.dtype == dict(zip(names, inputs))[name].dtype
        assert_close(f"d{name}", gr, gr_ref, dtype)


@cpu_only
@CPU_SETTINGS
@given(
    B=st.integers(1, 2),
    L=st.sampled_from([1, 2, 3, 5, 13, 64, 67, 131]),
    C=st.sampled_from([1, 3, 16, 37]),
    K=st.integers(1, 5),
    dtype=DTYPES,
    has_bias=st.booleans(),
    has_state=st.booleans(),
    scale=st.sampled_from([1.0, 8.0]),
    seed=st.integers(0, 2**16),
)
def test_forward_backward_matches_oracle(B, L, C, K, dtype, has_bias, has_state, scale, seed):
    check_fwd_bwd(B, L, C, K, dtype, "cpu", has_bias, has_state, scale, seed)


@cpu_only
@settings(max_examples=6, **FEW)
@given(L=st.integers(2, 40), K=st.integers(2, 4), dtype=DTYPES, split=st.data())
def test_split_and_resume_equals_one_call(L, K, dtype, split):
    """Run u[:s] with the final state, continue on u[s:]: the same y as one call, the same final state."""
    s = split.draw(st.integers(1, L - 1))
    u, gate, w, b, _ = make(2, L, 7, K, dtype, "cpu", True, False)
    with torch.no_grad():
        y, ht = gated_short_conv(u, gate, w, b, output_final_state=True, backend="triton")
        y1, h1 = gated_short_conv(u[:, :s], gate[:, :s], w, b, output_final_state=True, backend="triton")
        y2, h2 = gated_short_conv(
            u[:, s:], gate[:, s:], w, b, initial_state=h1, output_final_state=True, backend="triton"
        )
    assert torch.equal(torch.cat([y1, y2], 1), y) and torch.equal(h2, ht)


@cpu_only
@CPU_SETTINGS
@given(
    B=st.integers(1, 3),
    C=st.sampled_from([1, 5, 40]),
    K=st.integers(1, 5),
    dtype=DTYPES,
    has_bias=st.booleans(),
    steps=st.integers(1, 4),
    seed=st.integers(0, 2**16),
)
def test_step_matches_forward_and_updates_state_in_place(B, C, K, dtype, has_bias, steps, seed):
    """Decode ≡ forward over the same tokens from the same initial state; the state is the last K−1 inputs."""
    u, gate, w, b, h0 = make(B, steps, C, K, dtype, "cpu", has_bias, True, seed=seed)
    with torch.no_grad():
        y_ref, ht_ref = gated_short_conv_reference(u, gate, w, b, h0)
        state = h0.detach().clone()
        ptr = state.data_ptr()
        for t in range(steps):
            y_t = gated_short_conv_step(u[:, t].contiguous(), gate[:, t].contiguous(), state, w, b, backend="triton")
            assert_close(f"y step {t}", y_t, y_ref[:, t], dtype)
        assert state.data_ptr() == ptr
        if K > 1:
            assert torch.equal(state.double(), ht_ref)


def strided_views(B, L, C, K, dtype, layout, seed=0):
    """u and gate as the mixer makes them: ``"halves"``, the two halves of one ``[B, L, 2C]`` projection (time stride
    2C, no copy in the op); ``"time_major"``, views of a ``[L, B, 2C]`` buffer (batch stride 2C, time stride 2BC);
    ``"channels_strided"``, ``[B, C, L]`` transposed (channel stride L ≠ 1: the op copies). Leaves: the buffers."""
    g = torch.Generator().manual_seed(seed)
    if layout == "halves":
        buf = torch.randn(B, L, 2 * C, generator=g).to(dtype).requires_grad_()
        u, gate = buf.chunk(2, dim=-1)
        leaves = [buf]
    elif layout == "time_major":
        buf = torch.randn(L, B, 2 * C, generator=g).to(dtype).requires_grad_()
        u, gate = buf.transpose(0, 1).chunk(2, dim=-1)
        leaves = [buf]
    else:
        bu, bg = (torch.randn(B, C, L, generator=g).to(dtype).requires_grad_() for _ in range(2))
        u, gate = bu.transpose(1, 2), bg.transpose(1, 2)
        leaves = [bu, bg]
    w = (torch.randn(C, K, generator=g) * K**-0.5).to(dtype).requires_grad_()
    b = torch.randn(C, generator=g).to(dtype).requires_grad_()
    h0 = torch.randn(B, K - 1, C, generator=g).to(dtype).requires_grad_()
    return u, gate, w, b, h0, leaves


@cpu_only
@pytest.mark.parametrize(
    "B,L,C,K,dtype,layout",
    [(2, 37, 5, 3, torch.float32, "halves"), (1, 9, 16, 4, torch.bfloat16, "halves"),
     (3, 20, 7, 2, torch.float32, "time_major"), (2, 13, 6, 3, torch.float32, "channels_strided")],
)  # fmt: skip
def test_strided_inputs_match_oracle(B, L, C, K, dtype, layout):
    """u and gate read through their strides: y, the final state and every gradient against the oracle on the same
    views (for ``"halves"`` no copy: the kernel reads the projection buffer itself)."""
    u, gate, w, b, h0, leaves = strided_views(B, L, C, K, dtype, layout)
    assert not u.is_contiguous() and not gate.is_contiguous()
    y, ht = gated_short_conv(u, gate, w, b, initial_state=h0, output_final_state=True, backend="triton")
    y_ref, ht_ref = gated_short_conv_reference(u, gate, w, b, h0)
    assert_close("y", y, y_ref, dtype)
    assert torch.equal(ht.double(), ht_ref)
    dy = torch.randn(y.shape, generator=torch.Generator().manual_seed(1)).to(dtype)
    inputs = [*leaves, w, b, h0]
    grads = torch.autograd.grad((y.float() * dy.float()).sum() + ht.float().sum(), inputs)
    grads_ref = torch.autograd.grad((y_ref * dy.double()).sum() + ht_ref.sum(), inputs)
    for i, (gr, gr_ref) in enumerate(zip(grads, grads_ref)):
        assert_close(f"grad {i}", gr, gr_ref, dtype)


@cpu_only
@pytest.mark.parametrize(
    "B,L,C,K,dtype,has_state,layout",
    [(2, 131, 16, 3, torch.float32, False, None), (1, 67, 32, 4, torch.bfloat16, True, None),
     (2, 50, 16, 1, torch.float16, False, None), (2, 45, 32, 2, torch.float32, True, "halves"),
     (1, 40, 12, 3, torch.float32, False, None)],
)  # fmt: skip
@pytest.mark.parametrize("fast", [True, False], ids=["fast", "general"])
def test_forward_paths_match_oracle(monkeypatch, B, L, C, K, dtype, has_state, layout, fast):
    """``FWD_FAST`` on (the default): interior tiles (BT=16 rows here, full channel blocks: C a power of two) take the
    unmasked path with the approximate sigmoid, the first tile, the last partial one and C=12's partial channel block
    the general one. Off: every tile takes the general path. y and the final state against the oracle (the backward
    is unchanged)."""
    monkeypatch.setattr(T, "FWD_FAST", fast)
    if layout is None:
        u, gate, w, b, h0 = make(B, L, C, K, dtype, "cpu", True, has_state, seed=L)
    else:
        u, gate, w, b, h0, _ = strided_views(B, L, C, K, dtype, layout, seed=L)
    with torch.no_grad():
        y, ht = gated_short_conv(u, gate, w, b, initial_state=h0, output_final_state=True, backend="triton")
    y_ref, ht_ref = gated_short_conv_reference(u, gate, w, b, h0)
    assert_close("y", y, y_ref, dtype)
    assert torch.equal(ht.double(), ht_ref)


@cpu_only
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_step_reads_strided_rows(dtype):
    """The decode step on u and gate that are halves of projection rows (batch stride steps·2C, not C)."""
    B, C, K, steps = 3, 10, 3, 3
    u, gate, w, b, h0, _ = strided_views(B, steps, C, K, dtype, "halves", seed=2)
    with torch.no_grad():
        y_ref, ht_ref = gated_short_conv_reference(u, gate, w, b, h0)
        state = h0.detach().clone()
        for t in range(steps):
            ut, gt = u[:, t], gate[:, t]
            assert ut.stride() == (steps * 2 * C, 1)
            assert_close(
                f"y step {t}", gated_short_conv_step(ut, gt, state, w, b, backend="triton"), y_ref[:, t], dtype
            )
        assert torch.equal(state.double(), ht_ref)


@cpu_only
def test_custom_ops_pass_opcheck_and_compile():
    u, gate, w, b, h0 = make(2, 11, 6, 3, torch.float32, "cpu", True, True)
    torch.library.opcheck(torch.ops.mixerzoo.gated_short_conv_fwd, (u, gate, w, b, h0))
    torch.library.opcheck(torch.ops.mixerzoo.gated_short_conv_fwd, (u, gate, w, None, None))
    su, sg, *_ = strided_views(2, 11, 6, 3, torch.float32, "halves")
    torch.library.opcheck(torch.ops.mixerzoo.gated_short_conv_fwd, (su, sg, w, b, h0))
    state = h0.detach().clone()
    torch.library.opcheck(
        torch.ops.mixerzoo.gated_short_conv_step, (u[:, 0].detach(), gate[:, 0].detach(), state, w.detach(), None)
    )

    def f(u, gate, w, b, h0):  # the Triton entry point (the public dispatcher's importlib call breaks fullgraph)
        y, ht = T.gated_short_conv_triton(u, gate, w, b, initial_state=h0, output_final_state=True)
        return y.sum() + ht.sum()

    compiled = torch.compile(f, backend="aot_eager", fullgraph=True)
    out = compiled(u, gate, w, b, h0)
    ref = f(u, gate, w, b, h0)
    assert torch.allclose(out, ref)
    g1 = torch.autograd.grad(out, (u, w))
    g2 = torch.autograd.grad(ref, (u, w))
    assert all(torch.allclose(a, c) for a, c in zip(g1, g2))


@cpu_only
@pytest.mark.parametrize("used", ["y", "state", "both"])
def test_eager_path_equals_the_custom_op(used):
    """The eager autograd.Function (no dispatcher) against the custom op and the oracle, when only y, only the final
    state, or both reach the loss (an unused output brings a None gradient, not zeros)."""
    u, gate, w, b, h0 = make(2, 19, 6, 3, torch.float32, "cpu", True, True, seed=4)
    inputs = (u, gate, w, b, h0)
    g = torch.Generator().manual_seed(1)
    dy, dht = torch.randn(2, 19, 6, generator=g), torch.randn(2, 2, 6, generator=g)

    def loss(y, ht):
        return {"y": 0.0, "state": 1.0, "both": 1.0}[used] * (ht * dht).sum() + (
            (y * dy).sum() if used != "state" else 0.0
        )

    y, ht = T.gated_short_conv_triton(u, gate, w, b, initial_state=h0, output_final_state=True)
    y_op, ht_op = torch.ops.mixerzoo.gated_short_conv_fwd(u, gate, w, b, h0)
    assert torch.equal(y, y_op) and torch.equal(ht, ht_op)
    if used == "y":  # the final state out of the loss: its gradient stays None, no zeros tensor is filled
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            torch.autograd.grad((y * dy).sum(), inputs, retain_graph=True)
        assert not {e.name for e in prof.events()} & {"aten::zeros", "aten::zeros_like", "aten::zero_"}
    grads = torch.autograd.grad(loss(y, ht), inputs, materialize_grads=True)
    grads_op = torch.autograd.grad(loss(y_op, ht_op), inputs, materialize_grads=True)
    y_ref, ht_ref = gated_short_conv_reference(u, gate, w, b, h0)
    grads_ref = torch.autograd.grad(loss(y_ref, ht_ref), inputs, materialize_grads=True)
    for name, gr, gr_op, gr_ref in zip(("u", "gate", "weight", "bias", "state"), grads, grads_op, grads_ref):
        assert torch.equal(gr, gr_op), name
        if gr_ref.abs().max() > 0:
            assert_close(f"d{name}", gr, gr_ref, torch.float32)
        else:
            assert gr.abs().max() == 0, name


@cpu_only
def test_dtype_passthrough_and_causality():
    """Changing token t changes no output before t."""
    u, gate, w, b, _ = make(1, 20, 4, 4, torch.float32, "cpu", True, False)
    with torch.no_grad():
        y = gated_short_conv(u, gate, w, b, backend="triton")
        u2 = u.clone()
        u2[:, 11] += 5.0
        y2 = gated_short_conv(u2, gate, w, b, backend="triton")
    assert torch.equal(y[:, :11], y2[:, :11]) and not torch.equal(y[:, 11:15], y2[:, 11:15])


# ---------------------------------------------------------------------------------------------- GPU
gpu = pytest.mark.gpu


@gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize(
    "B,L,C,K,has_bias,has_state",
    [
        (2, 4099, 1024, 3, True, True),
        (3, 1000, 257, 4, False, False),
        (1, 1, 768, 2, True, True),
        (4, 2048, 2048, 3, True, False),
    ],
)
def test_gpu_forward_backward(B, L, C, K, has_bias, has_state, dtype):
    check_fwd_bwd(B, L, C, K, dtype, "cuda", has_bias, has_state)


@gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize(
    "B,L,C,K,has_state", [(2, 4099, 1024, 3, True), (4, 2048, 4096, 4, False), (3, 1000, 257, 3, False)]
)
@pytest.mark.parametrize("fast", [True, False], ids=["fast", "general"])
def test_gpu_forward_paths(monkeypatch, B, L, C, K, has_state, dtype, fast):
    """``FWD_FAST`` on and off at the GPU's tiles (on: interior tiles unmasked, approximate sigmoid; C=257: partial
    channel block)."""
    monkeypatch.setattr(T, "FWD_FAST", fast)
    check_fwd_bwd(B, L, C, K, dtype, "cuda", True, has_state)


@gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_gpu_step_cuda_graph(dtype):
    """The decode step captured in a CUDA graph and replayed: same results as eager, state advanced in place."""
    B, C, K, steps = 16, 1024, 3, 5
    u, gate, w, b, h0 = make(B, steps, C, K, dtype, "cuda", True, True)
    with torch.no_grad():
        y_ref, ht_ref = gated_short_conv_reference(u, gate, w, b, h0)
        state = h0.detach().clone()
        u_in, g_in = torch.empty_like(u[:, 0]), torch.empty_like(gate[:, 0])
        u_in.copy_(u[:, 0])
        g_in.copy_(gate[:, 0])
        scratch = state.clone()
        gated_short_conv_step(u_in, g_in, scratch, w, b, backend="triton")  # compile outside the capture
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            y_out = gated_short_conv_step(u_in, g_in, state, w, b, backend="triton")
        state.copy_(h0)
        for t in range(steps):
            u_in.copy_(u[:, t])
            g_in.copy_(gate[:, t])
            graph.replay()
            assert_close(f"graph step {t}", y_out, y_ref[:, t], dtype)
        assert torch.equal(state.double(), ht_ref)


@gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("scale", [1.0, 8.0])
def test_gpu_tanh_silu_is_as_accurate_as_the_sigmoid_form(monkeypatch, scale):
    """``FWD_TANH`` (bf16, on by default): the forward's error against fp64 within 2% of the sigmoid form's (both are
    bf16's rounding of y), and no element further from the fp64 value than the sigmoid form's worst by more than
    ``|z|/2 · 2^−10 · |gate|`` (tanh.approx's error, doubled). scale 8: pre-activations out to ±40, deep in the
    saturated tails."""
    u, gate, w, b, _ = make(4, 1000, 1024, 3, torch.bfloat16, "cuda", True, False, scale=scale, seed=3)
    with torch.no_grad():
        y_ref, _ = gated_short_conv_reference(u, gate, w, b)
        outs = {}
        for tanh in (False, True):
            monkeypatch.setattr(T, "FWD_TANH", tanh)
            outs[tanh] = gated_short_conv(u, gate, w, b, backend="triton").double()
        x = torch.cat([torch.zeros_like(u[:, :2]), u], 1).double()
        pre = b.double() + sum(w[:, k].double() * x[:, k : k + u.shape[1]] for k in range(3))  # z, fp64
        bound = (outs[False] - y_ref).abs().max() + pre.abs() / 2 * 2**-10 * gate.double().abs()
    err = {k: rel_err(v, y_ref) for k, v in outs.items()}
    assert err[True] <= 1.02 * err[False], f"tanh form's error {err[True]:.4e} vs sigmoid form's {err[False]:.4e}"
    worst = ((outs[True] - y_ref).abs() - bound).max().item()
    assert worst <= 0, f"an element {worst:.3g} past the bound"


@gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_step_pdl_chain_equals_plain_launches(monkeypatch):
    """Programmatic dependent launch (``_launch.STEP_PDL`` 1 and 2; sm_90+): 24 steps back to back in one
    CUDA graph, each reading the state the step before wrote, give bit-equal outputs and states with and without it."""
    from mixerzoo.kernels import _launch

    if torch.cuda.get_device_capability()[0] < 9:
        pytest.skip("programmatic dependent launch needs sm_90+")
    B, C, K, n = 64, 4096, 3, 24
    u, gate, w, b, h0 = make(B, n, C, K, torch.bfloat16, "cuda", True, True, seed=5)
    res = {}
    with torch.no_grad():
        for pdl in (0, 1, 2):
            monkeypatch.setattr(_launch, "STEP_PDL", pdl)
            state = h0.detach().clone()
            T.gated_short_conv_step_triton(u[:, 0], gate[:, 0], state.clone(), w, b)  # compile outside the capture
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                ys = [T.gated_short_conv_step_triton(u[:, t], gate[:, t], state, w, b) for t in range(n)]
            state.copy_(h0)
            graph.replay()
            torch.cuda.synchronize()
            res[pdl] = (torch.stack(ys, 1), state)
    y_ref, ht_ref = gated_short_conv_reference(u, gate, w, b, h0)
    assert_close("y (PDL)", res[2][0], y_ref, torch.bfloat16)
    assert torch.equal(res[2][1].double(), ht_ref)
    for mode in (1, 2):
        assert torch.equal(res[mode][0], res[0][0]) and torch.equal(res[mode][1], res[0][1]), mode
