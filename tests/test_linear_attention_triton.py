"""The fused Triton linear-attention kernels against the fp64 einsum oracle, for every feature map.

On the CPU the kernels run under ``TRITON_INTERPRET=1`` (set here before triton is imported) with
small shapes and chunk sizes of 16/32 so that several chunks, ragged tails and both algorithms
(chunked and quadratic) are exercised; ``-m gpu`` runs large shapes on a real GPU.

Every test runs with ``triton_ops.POISON_OUTPUTS``: kernel outputs and intermediates start as NaN, so
an element a kernel forgets to write fails the comparison.

Tolerances (relative error ‖out − ref‖/‖ref‖ against fp64 on the same rounded inputs), always asserted;
gradients use ``max(‖ref‖, 0.05·‖do‖)`` as the norm, because some vanish exactly (L = 1 normalized:
dq = dk = 0) and leave only rounding amplified by 1/den:

| dtype | output | grads (q, k, v) | why |
|---|---|---|---|
| fp32 | 2e-5 | 2e-4 | fp32 arithmetic, full-precision dots |
| fp16 | 4e-3 | 1e-2 | one fp16 rounding of o/dq/dk/dv (~5e-4) plus tf32 dots on the GPU |
| bf16 | 1.5e-2 | 4e-2 | one bf16 rounding (~4e-3) plus tf32 dots on the GPU |
"""

from __future__ import annotations

import math
import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402
from hypothesis import Phase, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from mixerzoo.feature_maps import feature_map  # noqa: E402
from mixerzoo.kernels.linear_attention import (  # noqa: E402
    linear_attention,
    linear_attention_reference,
    linear_attention_step,
)
from mixerzoo.kernels.linear_attention import triton_ops as T  # noqa: E402

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
TOL = {torch.float32: (2e-5, 2e-4), torch.float16: (4e-3, 1e-2), torch.bfloat16: (1.5e-2, 4e-2)}
MAPS = ["taylor", "poselu", "relu", "square", "identity", "performer", "cosformer"]
LENGTHS = [1, 2, 3, 5, 7, 13, 16, 17, 31, 33, 37, 47]  # 1, primes, around the chunk sizes 16 and 32
MAX_LEN = 4096


def rel_err(out: torch.Tensor, ref: torch.Tensor, floor: float = 1e-30) -> float:
    """‖out − ref‖ / max(‖ref‖, floor) in fp64; non-finite anywhere gives inf, so it never passes.

    ``floor`` guards gradients that vanish exactly (L = 1 normalized: dq = dk = 0), where only rounding is left.
    """
    out, ref = out.detach().double(), ref.detach().double()
    if not torch.isfinite(out).all():
        return float("inf")
    return float((out - ref).norm() / ref.norm().clamp_min(floor))


def make_map(name: str, d_prime: int, m: int | None = None):
    if name == "performer":
        return feature_map(name, d_prime, m=m or 2 * d_prime + 3)
    if name == "cosformer":
        return feature_map(name, d_prime, max_len=MAX_LEN)
    return feature_map(name, d_prime)


def normalize_for(name: str) -> bool:
    return name != "identity"


@pytest.fixture(autouse=True)
def _kernel_settings():
    """NaN-poisoned outputs for every test; restore the algorithm/chunk choice afterwards."""
    T.POISON_OUTPUTS = True
    yield
    T.POISON_OUTPUTS = False
    T.FORCE_MODE = None
    T.FORCE_CHUNK = None


def inputs(B, L, H, d, dv, dtype, scale, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = (torch.randn(B, L, H, d, generator=g) * scale).to(dtype)
    k = (torch.randn(B, L, H, d, generator=g) * scale).to(dtype)
    v = torch.randn(B, L, H, dv, generator=g).to(dtype)
    do = torch.randn(B, L, H, dv, generator=g).to(dtype)
    return [t.to(DEVICE) for t in (q, k, v, do)]


def check_against_oracle(name, B, L, H, d, dv, dtype, scale, mode, chunk, offset=0, seed=0, grads=True):
    T.FORCE_MODE, T.FORCE_CHUNK = mode, chunk
    fm = make_map(name, d).to(DEVICE)
    norm = normalize_for(name)
    q, k, v, do = inputs(B, L, H, d, dv, dtype, scale, seed)
    leaves = [t.clone().requires_grad_(grads) for t in (q, k, v)]
    o = linear_attention(*leaves, fm, normalize=norm, offset=offset, backend="triton")
    assert o.dtype == dtype and o.shape == (B, L, H, dv)
    ref_in = [t.double().requires_grad_(grads) for t in (q, k, v)]
    ref, _ = linear_attention_reference(*ref_in, fm, normalize=norm, offset=offset)
    tol_o, tol_g = TOL[dtype]
    err = rel_err(o, ref)
    assert err < tol_o, f"{name} {mode} {dtype} output rel err {err:.2e} >= {tol_o}"
    if grads:
        got = torch.autograd.grad(o, leaves, do)
        want = torch.autograd.grad(ref, ref_in, do.double())
        for n, a, b in zip("qkv", got, want):
            assert a.dtype == dtype
            e = rel_err(a, b, floor=5e-2 * float(do.double().norm()))
            assert e < tol_g, f"{name} {mode} {dtype} d{n} rel err {e:.2e} >= {tol_g}"


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("name", MAPS)
@settings(max_examples=3, deadline=None, phases=[Phase.explicit, Phase.reuse, Phase.generate])  # no shrinking: CI time
@given(
    B=st.integers(1, 2),
    L=st.sampled_from(LENGTHS),
    H=st.integers(1, 2),
    d=st.integers(1, 9),
    dv=st.integers(1, 12),
    scale=st.sampled_from([0.3, 1.0, 2.5]),
    mode=st.sampled_from(["chunk", "parallel"]),
    chunk=st.sampled_from([16, 32]),
    seed=st.integers(0, 2**16),
)
def test_matches_oracle(name, B, L, H, d, dv, dtype, scale, mode, chunk, seed):
    """Forward and q/k/v gradients of both algorithms match the fp64 oracle, random shapes and dtypes."""
    offset = 5 if name == "cosformer" else 0
    check_against_oracle(name, B, L, H, d, dv, dtype, scale, mode, chunk, offset=offset, seed=seed)


@pytest.mark.parametrize("name", ["taylor", "poselu", "relu", "square", "performer", "cosformer"])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_large_scale_is_finite_and_accurate(name, dtype):
    """Inputs at scale 30 (Taylor's s² ~ 1e5, Performer's exponents far below 0): no inf/NaN, still accurate."""
    T.FORCE_CHUNK = 16
    fm = make_map(name, 6).to(DEVICE)
    q, k, v, do = inputs(1, 29, 2, 6, 5, dtype, 30.0, seed=3)
    leaves = [t.clone().requires_grad_() for t in (q, k, v)]
    o = linear_attention(*leaves, fm, backend="triton")
    assert torch.isfinite(o).all()
    ref, _ = linear_attention_reference(q.double(), k.double(), v.double(), fm)
    assert rel_err(o, ref) < TOL[dtype][0]
    grads = torch.autograd.grad(o, leaves, do)
    if dtype == torch.bfloat16:  # fp16 gradients may legitimately exceed 65504 at this scale
        assert all(torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("name", MAPS)
def test_chunked_equals_parallel_equals_steps(name):
    """The chunked and the quadratic kernel and token-by-token decode steps give one function (fp32)."""
    B, L, H, d, dv = 2, 19, 2, 5, 6
    fm = make_map(name, d).to(DEVICE)
    norm = normalize_for(name)
    q, k, v, _ = inputs(B, L, H, d, dv, torch.float32, 1.0, seed=7)
    outs = {}
    for mode in ("chunk", "parallel"):
        T.FORCE_MODE, T.FORCE_CHUNK = mode, 16
        outs[mode], state = linear_attention(q, k, v, fm, normalize=norm, output_final_state=True, backend="triton")
    D = fm.out_dim
    kv = torch.zeros(B, H, D, dv, device=DEVICE)
    z = torch.zeros(B, H, D, device=DEVICE)
    steps = []
    for t in range(L):
        o_t, (kv, z) = linear_attention_step(
            q[:, t], k[:, t], v[:, t], (kv, z), fm, normalize=norm, offset=t, backend="triton"
        )
        steps.append(o_t)
    stepped = torch.stack(steps, 1)
    assert rel_err(outs["chunk"], outs["parallel"]) < 2e-6
    assert rel_err(stepped, outs["chunk"]) < 2e-6
    assert rel_err(kv, state[0]) < 2e-6 and rel_err(z, state[1]) < 2e-6


@pytest.mark.parametrize("name", MAPS)
@pytest.mark.parametrize("mode", ["chunk", "parallel"])
def test_split_with_state_equals_one_call(name, mode):
    """Run [0, t) with the final state out, then [t, L) from it (offset t): same outputs, state and gradients."""
    T.FORCE_MODE, T.FORCE_CHUNK = mode, 16
    B, L, H, d, dv, t = 1, 27, 2, 4, 5, 11
    fm = make_map(name, d).to(DEVICE)
    norm = normalize_for(name)
    q, k, v, do = inputs(B, L, H, d, dv, torch.float32, 1.0, seed=11)
    one = [x.clone().requires_grad_() for x in (q, k, v)]
    o_full, (kv_full, z_full) = linear_attention(*one, fm, normalize=norm, output_final_state=True, backend="triton")
    two = [x.clone().requires_grad_() for x in (q, k, v)]
    o1, s1 = linear_attention(*(x[:, :t] for x in two), fm, normalize=norm, output_final_state=True, backend="triton")
    o2, (kv2, z2) = linear_attention(
        *(x[:, t:] for x in two), fm, normalize=norm, initial_state=s1, output_final_state=True, offset=t,
        backend="triton",
    )  # fmt: skip
    assert rel_err(torch.cat([o1, o2], 1), o_full) < 2e-6
    assert rel_err(kv2, kv_full) < 2e-6 and rel_err(z2, z_full) < 2e-6
    # gradients flow through the state handed from the first call to the second
    w_kv = torch.randn_like(kv_full)
    loss_full = (o_full * do).sum() + (kv_full * w_kv).sum()
    loss_two = (torch.cat([o1, o2], 1) * do).sum() + (kv2 * w_kv).sum()
    g1 = torch.autograd.grad(loss_full, one)
    g2 = torch.autograd.grad(loss_two, two)
    for a, b in zip(g2, g1):
        assert rel_err(a, b) < 2e-5


@pytest.mark.parametrize("name", MAPS)
@pytest.mark.parametrize("mode", ["chunk", "parallel"])
def test_initial_state_gradients(name, mode):
    """Gradients w.r.t. a given initial state (and through the final state) match the oracle's autograd."""
    T.FORCE_MODE, T.FORCE_CHUNK = mode, 16
    B, L, H, d, dv = 2, 21, 1, 3, 4
    fm = make_map(name, d).to(DEVICE)
    norm = normalize_for(name)
    D = fm.out_dim
    q, k, v, do = inputs(B, L, H, d, dv, torch.float32, 1.0, seed=13)
    g = torch.Generator().manual_seed(1)
    kv0 = torch.rand(B, H, D, dv, generator=g).to(DEVICE)
    z0 = torch.rand(B, H, D, generator=g).to(DEVICE)
    w_kv, w_z = torch.randn(B, H, D, dv, generator=g).to(DEVICE), torch.randn(B, H, D, generator=g).to(DEVICE)
    xs = [t.clone().requires_grad_() for t in (q, k, v, kv0, z0)]
    o, (kv, z) = linear_attention(
        *xs[:3], fm, normalize=norm, initial_state=(xs[3], xs[4]), output_final_state=True, backend="triton"
    )
    rs = [t.double().requires_grad_() for t in (q, k, v, kv0, z0)]
    ro, (rkv, rz) = linear_attention_reference(*rs[:3], fm, normalize=norm, initial_state=(rs[3], rs[4]))
    assert rel_err(o, ro) < 2e-5 and rel_err(kv, rkv) < 2e-5 and rel_err(z, rz) < 2e-5
    got = torch.autograd.grad((o * do).sum() + (kv * w_kv).sum() + (z * w_z).sum(), xs)
    want = torch.autograd.grad((ro * do.double()).sum() + (rkv * w_kv).sum() + (rz * w_z).sum(), rs)
    for n, a, b in zip(["q", "k", "v", "kv0", "z0"], got, want):
        if b.abs().max() == 0:  # z0 without a normalizer: both exactly zero
            assert a.abs().max() == 0, n
        else:
            assert rel_err(a, b) < 1e-4, n


@pytest.mark.parametrize("name", MAPS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_step_matches_torch_step(name, dtype):
    """The decode kernel updates the canonical state in place exactly like the torch step, offset as a tensor too."""
    B, H, d, dv = 3, 2, 7, 9
    fm = make_map(name, d).to(DEVICE)
    norm = normalize_for(name)
    D = fm.out_dim
    g = torch.Generator().manual_seed(2)
    kv = torch.rand(B, H, D, dv, generator=g).to(DEVICE)
    z = torch.rand(B, H, D, generator=g).to(DEVICE)
    q, k, v = (torch.randn(B, H, n, generator=g).to(dtype).to(DEVICE) for n in (d, d, dv))
    kv_t, z_t = kv.clone(), z.clone()
    for offset in (37, torch.tensor(38, device=DEVICE)):
        o, (kv_out, z_out) = linear_attention_step(
            q, k, v, (kv, z), fm, normalize=norm, offset=offset, backend="triton"
        )
        o_t, _ = linear_attention_step(q, k, v, (kv_t, z_t), fm, normalize=norm, offset=offset, backend="torch")
        assert kv_out is kv and z_out is z  # in place
        assert o.dtype == dtype
        assert rel_err(o, o_t) < TOL[dtype][0] and rel_err(kv, kv_t) < 1e-6 and rel_err(z, z_t) < 1e-6


def test_state_is_canonical():
    """The final state is in the torch feature map's canonical order (Taylor's symmetric D = 1 + d′ + d′(d′+1)/2)."""
    T.FORCE_CHUNK = 16
    fm = make_map("taylor", 5).to(DEVICE)
    q, k, v, _ = inputs(1, 20, 1, 5, 3, torch.float32, 1.0)
    _, (kv, z) = linear_attention(q, k, v, fm, output_final_state=True, backend="triton")
    phi_k = fm(k)  # [B, L, H, D]
    assert kv.shape == (1, 1, 1 + 5 + 15, 3)
    assert rel_err(kv, torch.einsum("blhd,blhe->bhde", phi_k, v)) < 1e-6
    assert rel_err(z, phi_k.sum(1)) < 1e-6


@pytest.mark.parametrize("public", [False, True])
def test_compile_traces_through(public):
    """torch.compile(fullgraph=True) traces the custom ops, forward and backward, with the state conversions,
    through the Triton entry point and through the public dispatcher."""
    T.FORCE_CHUNK = 16
    fm = make_map("taylor", 4).to(DEVICE)
    q, k, v, do = inputs(1, 18, 2, 4, 5, torch.float32, 1.0)

    def f(q, k, v):
        if public:
            o, (kv, z) = linear_attention(q, k, v, fm, output_final_state=True, backend="triton")
        else:
            o, (kv, z) = T.linear_attention_triton(
                q, k, v, fm, normalize=True, eps=1e-6, initial_state=None, output_final_state=True, offset=0
            )
        return o * 2, kv.sum() + z.sum()

    backend = "inductor" if DEVICE == "cuda" else "aot_eager"
    torch._dynamo.reset()
    compiled = torch.compile(f, backend=backend, fullgraph=True)
    leaves = [t.clone().requires_grad_() for t in (q, k, v)]
    o, s = compiled(*leaves)
    grads = torch.autograd.grad((o * do).sum() + s, leaves)
    ref_leaves = [t.clone().requires_grad_() for t in (q, k, v)]
    o_e, s_e = f(*ref_leaves)
    ref_grads = torch.autograd.grad((o_e * do).sum() + s_e, ref_leaves)
    assert rel_err(o, o_e) < 1e-6 and rel_err(s, s_e) < 1e-6
    for a, b in zip(grads, ref_grads):
        assert rel_err(a, b) < 1e-6


def test_auto_mode_choice():
    """``auto`` takes the quadratic kernel up to the measured crossover and the chunked one beyond."""
    plan = T.make_plan("taylor", 16)
    limit = T.PARALLEL_MAX_L["taylor"]
    assert T._use_parallel(plan, limit) and not T._use_parallel(plan, limit + 1)


def test_unsupported_inputs_raise_clearly():
    with pytest.raises(ValueError, match="d′ must be in 1..64"):
        T.make_plan("taylor", 65)
    with pytest.raises(NotImplementedError, match="no fused kernel"):
        T.make_plan("hedgehog", 16)


# ---------------------------------------------------------------------------------------------------------------
# GPU: realistic shapes (run with pytest -m gpu on the H200)

gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@pytest.mark.gpu
@gpu
@pytest.mark.parametrize("name", MAPS)
@pytest.mark.parametrize("mode", ["chunk", "parallel", None])
def test_gpu_large_shapes(name, mode):
    """B=2, L=1031 (ragged), H=3, d′=16, dv=64, bf16, against the fp64 oracle, forward and gradients."""
    offset = 9 if name == "cosformer" else 0
    check_against_oracle(name, 2, 1031, 3, 16, 64, torch.bfloat16, 1.0, mode, None, offset=offset)


@pytest.mark.gpu
@gpu
@pytest.mark.parametrize("name", ["taylor", "poselu"])
@pytest.mark.parametrize("dtype", [torch.float16, torch.float32])
def test_gpu_other_dtypes(name, dtype):
    check_against_oracle(name, 2, 777, 3, 16, 64, dtype, 1.0, None, None)


@pytest.mark.gpu
@gpu
@pytest.mark.parametrize(
    "name,d,dv", [("taylor", 1, 1), ("taylor", 24, 256), ("taylor", 64, 48), ("performer", 7, 100), ("poselu", 33, 40)]
)
def test_gpu_extreme_dims(name, d, dv):
    check_against_oracle(name, 1, 300, 2, d, dv, torch.bfloat16, 1.0, "chunk", None)


@pytest.mark.gpu
@gpu
@pytest.mark.parametrize("name", MAPS)
def test_gpu_step_cuda_graph(name):
    """The decode step captured in a CUDA graph (offset a device tensor) replays exactly like eager steps."""
    B, H, d, dv = 4, 16, 16, 128
    fm = make_map(name, d).to(DEVICE)
    norm = normalize_for(name)
    D = fm.out_dim
    kv = torch.rand(B, H, D, dv, device=DEVICE)
    z = torch.rand(B, H, D, device=DEVICE)
    kv_e, z_e = kv.clone(), z.clone()
    q, k, v = (torch.randn(B, H, n, device=DEVICE, dtype=torch.bfloat16) for n in (d, d, dv))
    pos = torch.tensor(5, device=DEVICE)
    linear_attention_step(q, k, v, (kv.clone(), z.clone()), fm, normalize=norm, offset=pos)  # compile first
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        o, _ = linear_attention_step(q, k, v, (kv, z), fm, normalize=norm, offset=pos)
    for t in range(3):
        pos.fill_(5 + t)
        graph.replay()
        o_e, _ = linear_attention_step(q, k, v, (kv_e, z_e), fm, normalize=norm, offset=5 + t, backend="torch")
        assert rel_err(o, o_e) < 1e-2 and rel_err(kv, kv_e) < 1e-6 and rel_err(z, z_e) < 1e-6


@pytest.mark.gpu
@gpu
def test_gpu_compile_inductor_model():
    """A small module with the kernel inside compiles under inductor, fullgraph, and trains a step."""
    fm = make_map("taylor", 16).to(DEVICE)
    proj = torch.nn.Linear(64, 3 * 4 * 16, device=DEVICE)

    def f(x):
        q, k, v = proj(x).view(2, 256, 3, 4, 16).unbind(2)
        return linear_attention(q, k, v, fm).sum()

    x = torch.randn(2, 256, 64, device=DEVICE)
    loss = torch.compile(f, fullgraph=True)(x)
    loss.backward()
    assert math.isfinite(float(loss)) and torch.isfinite(proj.weight.grad).all()
