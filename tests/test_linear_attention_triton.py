"""The fused Triton linear-attention kernels against the fp64 einsum oracle, for every feature map.

On the CPU the kernels run under ``TRITON_INTERPRET=1`` (set here before triton is imported) with
small shapes and chunk sizes of 16/32 so that several chunks, ragged tails and both algorithms
(chunked and quadratic) are exercised; ``-m gpu`` runs large shapes on a real GPU.

The chunked mode has two state algorithms (``triton_ops.ALGORITHM``): ``serial`` scans and ``parallel`` per-chunk
states plus a prefix sum. The default, ``auto``, picks ``parallel`` for wide states (here Taylor) and ``serial`` for the
others at these lengths; every test that does not name an algorithm runs that default. Both algorithms are covered
for every map by the tests marked "both state algorithms", ``test_parallel_states_match_oracle`` and
``test_serial_states_match_oracle``. ``MIXERZOO_LA_ALGO=parallel`` (or ``serial``) runs the whole file on one.
The ``parallel`` algorithm's chunk-state kernel (``triton_ops.CHUNK_STATE``, default ``auto``: ``head`` for Taylor, ``tiles``
else) has its own tests for ``head`` (``test_chunk_state_head_*``); ``MIXERZOO_LA_CHUNK_STATE=head`` runs the whole file on it.

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

import copy
import inspect
import math
import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402
from hypothesis import Phase, example, given, settings  # noqa: E402
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
    algorithm, chunk_state, taylor_symmetric, dots_bf16 = T.ALGORITHM, T.CHUNK_STATE, T.TAYLOR_SYMMETRIC, T.DOTS_BF16
    fuse_bwd_pre, bwd_one_launch, bwd_tile_pass = T.FUSE_BWD_PRE, T.BWD_ONE_LAUNCH, T.BWD_TILE_PASS
    fwd_chunks_bf16 = T.FWD_CHUNKS_BF16
    T.POISON_OUTPUTS = True
    yield
    T.POISON_OUTPUTS = False
    T.FORCE_STEP = None
    T.FORCE_MODE = None
    T.FORCE_CHUNK = None
    T.ALGORITHM = algorithm
    T.CHUNK_STATE = chunk_state
    T.BWD_SPLIT = True
    T.SAVE_FWD_STATES = True
    T.TAYLOR_SYMMETRIC = taylor_symmetric
    T.DOTS_BF16 = dots_bf16
    T.FUSE_BWD_PRE = fuse_bwd_pre
    T.BWD_ONE_LAUNCH = bwd_one_launch
    T.BWD_TILE_PASS = bwd_tile_pass
    T.FWD_CHUNKS_BF16 = fwd_chunks_bf16


def inputs(B, L, H, d, dv, dtype, scale, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = (torch.randn(B, L, H, d, generator=g) * scale).to(dtype)
    k = (torch.randn(B, L, H, d, generator=g) * scale).to(dtype)
    v = torch.randn(B, L, H, dv, generator=g).to(dtype)
    do = torch.randn(B, L, H, dv, generator=g).to(dtype)
    return [t.to(DEVICE) for t in (q, k, v, do)]


def initial_state_for(fm, B, H, d, dv, dtype, scale, g):
    """An initial state ``(kv [B, H, D, dv], z [B, H, D])`` fp32: arbitrary values (uniform in [0, 1)), except for
    Taylor with 16-bit inputs, which gets the state a prefix of 5 random tokens leaves (what prefill hands to the next
    call). Taylor's features are signed: against uniform values its denominator ``φq·z0`` can cancel to near zero
    (no prefix can produce that: ``φq·φk = 1 + s + s²/2 >= 1/2``), and that token's output is then ill-conditioned
    for any 16-bit product of φq (tf32 on the GPU, bf16 by default; a session-7 case: |o| = 220, error 6.5% with bf16
    products, ~4× less with tf32 ones, which the interpreter computes exactly). The nonnegative maps have no such
    cancellation, and a short prefix of ReLU features is sparse enough to leave small denominators of its own."""
    D = fm.out_dim
    if dtype == torch.float32 or fm.kernel_id != "taylor":
        return torch.rand(B, H, D, dv, generator=g).to(DEVICE), torch.rand(B, H, D, generator=g).to(DEVICE)
    kp = (torch.randn(B, 5, H, d, generator=g) * scale).to(dtype).double()
    vp = torch.randn(B, 5, H, dv, generator=g).to(dtype).double()
    phi = copy.deepcopy(fm).cpu().double()(kp)
    return torch.einsum("bphd,bphe->bhde", phi, vp).float().to(DEVICE), phi.sum(1).float().to(DEVICE)


def check_against_oracle(
    name, B, L, H, d, dv, dtype, scale, mode, chunk, offset=0, seed=0, grads=True, algorithm=None, initial_state=False
):
    """The kernel's output and q/k/v gradients against the fp64 oracle (``initial_state``: from an initial state,
    ``initial_state_for``, also checking the final state and the gradients into the initial state)."""
    T.FORCE_MODE, T.FORCE_CHUNK = mode, chunk
    if algorithm is not None:
        T.ALGORITHM = algorithm
    fm = make_map(name, d).to(DEVICE)
    norm = normalize_for(name)
    q, k, v, do = inputs(B, L, H, d, dv, dtype, scale, seed)
    xs, names = [q, k, v], ["q", "k", "v"]
    if initial_state:
        g = torch.Generator().manual_seed(seed + 1)
        D = fm.out_dim
        xs += list(initial_state_for(fm, B, H, d, dv, dtype, scale, g))
        names += ["kv0", "z0"]
        w_kv, w_z = torch.randn(B, H, D, dv, generator=g).to(DEVICE), torch.randn(B, H, D, generator=g).to(DEVICE)
    leaves = [t.clone().requires_grad_(grads) for t in xs]
    kw = dict(normalize=norm, offset=offset)
    if initial_state:
        o, (kv, z) = linear_attention(
            *leaves[:3], fm, initial_state=(leaves[3], leaves[4]), output_final_state=True, backend="triton", **kw
        )
    else:
        o = linear_attention(*leaves, fm, backend="triton", **kw)
    assert o.dtype == dtype and o.shape == (B, L, H, dv)
    ref_in = [t.double().requires_grad_(grads) for t in xs]
    state0 = (ref_in[3], ref_in[4]) if initial_state else None
    ref, (rkv, rz) = linear_attention_reference(*ref_in[:3], fm, initial_state=state0, **kw)
    tol_o, tol_g = TOL[dtype]
    tag = f"{name} {mode} {T.ALGORITHM} {dtype} L={L}"
    err = rel_err(o, ref)
    assert err < tol_o, f"{tag} output rel err {err:.2e} >= {tol_o}"
    if initial_state:  # fp32 state; 16-bit inputs take tf32 dots on the GPU, so their output tolerance
        tol_s = 2e-5 if dtype == torch.float32 else tol_o
        assert rel_err(kv, rkv) < tol_s and rel_err(z, rz) < tol_s, f"{tag} final state"
    if grads:
        if initial_state:
            loss = (o * do).sum() + (kv * w_kv).sum() + (z * w_z).sum()
            got = torch.autograd.grad(loss, leaves)
            ref_loss = (ref * do.double()).sum() + (rkv * w_kv).sum() + (rz * w_z).sum()
            want = torch.autograd.grad(ref_loss, ref_in)
        else:
            got = torch.autograd.grad(o, leaves, do)
            want = torch.autograd.grad(ref, ref_in, do.double())
        for n, a, b in zip(names, got, want):
            assert a.dtype == xs[names.index(n)].dtype
            if n in ("kv0", "z0") and b.abs().max() == 0:  # z0 without a normalizer: both exactly zero
                assert a.abs().max() == 0, f"{tag} d{n}"
                continue
            e = rel_err(a, b, floor=5e-2 * float(do.double().norm()))
            assert e < tol_g, f"{tag} d{n} rel err {e:.2e} >= {tol_g}"


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


@pytest.mark.parametrize("name,algorithm", [("taylor", "parallel"), ("performer", "serial"), ("poselu", "parallel")])
def test_bf16_products_match_oracle_and_take_effect(name, algorithm):
    """bf16 inputs: the default bf16 products (``DOTS_BF16``; ``bf16emu`` under the interpreter, the same rounding)
    and tf32 ones both match the oracle at a large input scale (peaked attention) over several chunks, from an initial
    state, and at L = 1 (o = v: what the gradients' cancellations test); and the switch takes effect (the two outputs
    differ)."""
    outs = []
    for dots_bf16 in (True, False):
        T.DOTS_BF16 = dots_bf16
        check_against_oracle(
            name, 2, 47, 2, 6, 9, torch.bfloat16, 2.5, "chunk", 16, seed=3, algorithm=algorithm, initial_state=True
        )
        check_against_oracle(name, 2, 1, 2, 6, 9, torch.bfloat16, 2.5, "chunk", 16, seed=3, algorithm=algorithm)
        q, k, v, _ = inputs(2, 47, 2, 6, 9, torch.bfloat16, 2.5, seed=3)
        outs.append(linear_attention(q, k, v, make_map(name, 6).to(DEVICE), backend="triton").float())
    assert (outs[0] - outs[1]).abs().max() > 0, "DOTS_BF16 changed nothing"


# (dtype, L, chunk): L = 1, primes that leave a ragged last chunk, an exact multiple of the chunk
PARALLEL_CASES = [
    (torch.float32, 1, 16),
    (torch.float32, 47, 16),
    (torch.bfloat16, 37, 32),
    (torch.float16, 32, 16),
    (torch.bfloat16, 13, 16),
]


@pytest.mark.parametrize("name", MAPS)
@pytest.mark.parametrize("dtype,L,chunk", PARALLEL_CASES)
def test_parallel_states_match_oracle(name, dtype, L, chunk):
    """The ``parallel`` state algorithm (per-chunk states + prefix sums) against the fp64 oracle: output, final
    state and the q/k/v/initial-state gradients, from a random initial state, at the file's tolerances."""
    offset = 5 if name == "cosformer" else 0
    d, dv = (4, 7) if L > 1 else (3, 5)
    check_against_oracle(
        name, 2, L, 2, d, dv, dtype, 1.0, "chunk", chunk, offset=offset, seed=L, algorithm="parallel",
        initial_state=L != 13,
    )  # fmt: skip


@pytest.mark.parametrize("name", ["taylor", "performer"])
@pytest.mark.parametrize("dtype,L,chunk", PARALLEL_CASES)
def test_serial_states_match_oracle(name, dtype, L, chunk):
    """The ``serial`` state algorithm for the maps whose default (``auto``) is ``parallel`` at the benchmark's shapes
    (Taylor everywhere, Performer at m >= 64), same cases and tolerances as the test above."""
    d, dv = (4, 7) if L > 1 else (3, 5)
    check_against_oracle(
        name, 2, L, 2, d, dv, dtype, 1.0, "chunk", chunk, seed=L, algorithm="serial", initial_state=L != 13
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@settings(max_examples=3, deadline=None, phases=[Phase.explicit, Phase.reuse, Phase.generate])  # no shrinking: CI time
@given(
    L=st.sampled_from([1, 5, 16, 17, 31, 33, 47]),
    d=st.sampled_from([1, 2, 4, 5, 8, 16, 33]),
    dv=st.integers(1, 12),
    chunk=st.sampled_from([16, 32]),
    initial_state=st.booleans(),
    seed=st.integers(0, 2**16),
)
@example(L=17, d=33, dv=3, chunk=16, initial_state=True, seed=1)  # BK=64: R=1, 35 feature tiles
@example(L=47, d=20, dv=9, chunk=32, initial_state=False, seed=2)  # BK=32: R=2, last tile half past d′
@example(L=1, d=1, dv=1, chunk=16, initial_state=True, seed=3)
def test_chunk_state_head_matches_oracle(dtype, L, d, dv, chunk, initial_state, seed):
    """Taylor with the ``head`` chunk-state kernel (one program per chunk and head, φ by broadcasting; forward states
    and the backward's GRAD variant): output, final state and all gradients against the fp64 oracle. d′ covers every
    second-order tiling R = 64/BK (BK 16: R=4, d′=33 → BK 64: R=1), L odd and off the chunk, with and without s0."""
    T.CHUNK_STATE = "head"
    check_against_oracle(
        "taylor", 2, L, 2, d, dv, dtype, 1.0, "chunk", chunk, seed=seed, algorithm="parallel",
        initial_state=initial_state,
    )  # fmt: skip


@pytest.mark.parametrize("name", [m for m in MAPS if m != "taylor"])
def test_chunk_state_head_other_maps(name):
    """The ``head`` chunk-state kernel's generic path (``_phi_fwd`` per feature tile) for the other maps."""
    T.CHUNK_STATE = "head"
    offset = 5 if name == "cosformer" else 0
    check_against_oracle(
        name, 2, 37, 2, 4, 7, torch.float32, 1.0, "chunk", 16, offset=offset, seed=37, algorithm="parallel",
        initial_state=True,
    )  # fmt: skip


def test_chunk_state_head_equals_tiles():
    """Both chunk-state kernels give the same states and gradients (fp32, Taylor d′=5: two value tiles at dv=70)."""
    T.FORCE_MODE, T.FORCE_CHUNK, T.ALGORITHM = "chunk", 16, "parallel"
    fm = make_map("taylor", 5).to(DEVICE)
    q, k, v, do = inputs(1, 40, 2, 5, 70, torch.float32, 1.0, seed=5)
    res = {}
    for kernel in T.CHUNK_STATES:
        T.CHUNK_STATE = kernel
        leaves = [t.clone().requires_grad_() for t in (q, k, v)]
        o, (kv, z) = linear_attention(*leaves, fm, output_final_state=True, backend="triton")
        res[kernel] = (o, kv, z, *torch.autograd.grad((o * do).sum() + kv.sum() + z.sum(), leaves))
    for a, b in zip(res["head"], res["tiles"]):
        assert rel_err(a, b) < 1e-6


# The backward's layouts: (BWD_SPLIT, BWD_ONE_LAUNCH, BWD_TILE_PASS) and the launches of the dq/dk/dv kernel each makes.
# The default is "one launch" for Taylor (which has no tile pass) and "tile pass" for the other maps.
BWD_LAYOUTS = {
    "two launches": (True, "none", False, 2),
    "one launch": (True, "all", False, 1),
    "one program": (False, "none", False, 1),
    "tile pass": (True, "none", True, 2),
    "tile pass, one launch": (True, "all", True, 1),
}


def set_bwd_layout(layout: str) -> int:
    T.BWD_SPLIT, T.BWD_ONE_LAUNCH, T.BWD_TILE_PASS, launches = BWD_LAYOUTS[layout]
    return launches


@pytest.mark.parametrize("name", ["taylor", "performer", "cosformer"])
def test_backward_layouts_agree(name, monkeypatch):
    """dq and dk/dv as two launches, as one launch of two program kinds, as one program doing both, and
    with the chunk mode's feature tiles in one pass (``_bwd_chunk_tiles``; Taylor keeps its score path): the same
    gradients (fp32, chunked mode with states in and out, and the quadratic mode), and the launches each promises."""
    fm = make_map(name, 5).to(DEVICE)
    q, k, v, do = inputs(1, 37, 2, 5, 9, torch.float32, 1.0, seed=11)
    D = fm.out_dim
    kv0, z0 = torch.rand(1, 2, D, 9, device=DEVICE), torch.rand(1, 2, D, device=DEVICE)
    for mode in ("chunk", "parallel"):
        T.FORCE_MODE, T.FORCE_CHUNK = mode, 16
        res = {}
        layouts = [x for x in BWD_LAYOUTS if name != "taylor" or "tile pass" not in x]  # Taylor: its score path
        for layout in layouts:
            launches = set_bwd_layout(layout)
            counter = _CountLaunches(T._la_bwd_kernel)
            monkeypatch.setattr(T, "_la_bwd_kernel", counter)
            leaves = [t.clone().requires_grad_() for t in (q, k, v, kv0, z0)]
            o, (kv, z) = linear_attention(
                *leaves[:3], fm, initial_state=(leaves[3], leaves[4]), output_final_state=True, offset=3,
                backend="triton",
            )  # fmt: skip
            res[layout] = torch.autograd.grad((o * do).sum() + kv.sum() + z.sum(), leaves)
            monkeypatch.undo()
            assert counter.launches == launches, f"{layout}: {counter.launches} launches of the dq/dk/dv kernel"
        for layout in layouts:
            for a, b in zip(res["two launches"], res[layout]):
                assert rel_err(a, b) < 1e-6, (mode, layout)


@pytest.mark.parametrize("layout", ["two launches", "tile pass, one launch", "one launch"])
@pytest.mark.parametrize("name", ["poselu", "performer", "cosformer"])
@settings(max_examples=2, deadline=None, phases=[Phase.explicit, Phase.reuse, Phase.generate])  # no shrinking: CI time
@given(
    L=st.sampled_from([1, 17, 40, 67]),
    d=st.integers(1, 9),
    dv=st.integers(1, 12),
    dtype=st.sampled_from([torch.float32, torch.bfloat16]),
    initial_state=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_backward_layouts_match_oracle(name, layout, L, d, dv, dtype, initial_state, seed):
    """The non-default backward layouts against the fp64 oracle: chunked mode, random shapes and dtypes, with and
    without an initial state (the tile pass's state terms)."""
    set_bwd_layout(layout)
    check_against_oracle(
        name, 2, L, 2, d, dv, dtype, 1.0, "chunk", 16, offset=5 if name == "cosformer" else 0, seed=seed,
        initial_state=initial_state,
    )  # fmt: skip


@pytest.mark.parametrize("name", ["taylor", "poselu", "performer"])
@pytest.mark.parametrize("algorithm", ["serial", "parallel"])
def test_kept_states_equal_recomputed(name, algorithm):
    """The backward on the forward's kept per-chunk states (``SAVE_FWD_STATES``, default) or on states it recomputes:
    the same gradients in fp32 (the same states, from the same kernels), with states in and out; the bf16 run
    (whose kept states are the output kernel's bf16 copy) against the fp64 oracle, with ``SAVE_FWD_STATES`` off."""
    fm = make_map(name, 5).to(DEVICE)
    q, k, v, do = inputs(1, 37, 2, 5, 9, torch.float32, 1.0, seed=5)
    D = fm.out_dim
    kv0, z0 = torch.rand(1, 2, D, 9, device=DEVICE), torch.rand(1, 2, D, device=DEVICE)
    T.FORCE_MODE, T.FORCE_CHUNK, T.ALGORITHM = "chunk", 16, algorithm
    res = {}
    for keep in (True, False):
        T.SAVE_FWD_STATES = keep
        leaves = [t.clone().requires_grad_() for t in (q, k, v, kv0, z0)]
        o, (kv, z) = linear_attention(
            *leaves[:3], fm, initial_state=(leaves[3], leaves[4]), output_final_state=True, backend="triton"
        )
        res[keep] = torch.autograd.grad((o * do).sum() + kv.sum() + z.sum(), leaves)
    for a, b in zip(res[True], res[False]):
        assert rel_err(a, b) < 1e-6
    check_against_oracle(name, 1, 37, 2, 5, 9, torch.bfloat16, 1.0, "chunk", 16, seed=6, algorithm=algorithm)


@pytest.mark.parametrize("name", ["taylor", "performer", "cosformer"])
def test_fwd_chunk_contributions_in_bf16(name, monkeypatch):
    """``FWD_CHUNKS_BF16``: bf16 inputs in training (no final state asked for) store the chunks' own forward
    contributions in bf16 and still match the fp64 oracle (output and gradients, bf16 tolerance, 13 chunks); with a
    final state out, or the switch off, they stay fp32."""
    seen = []
    real = T._states_parallel
    signature = inspect.signature(real)

    def spy(*args, **kwargs):
        bound = signature.bind(*args, **kwargs).arguments
        seen.append((bound["grad"], bound["s_all"].dtype))
        return real(*args, **kwargs)

    monkeypatch.setattr(T, "_states_parallel", spy)
    check_against_oracle(name, 1, 203, 2, 8, 24, torch.bfloat16, 1.0, "chunk", 16, seed=3, algorithm="parallel")
    assert (False, torch.bfloat16) in seen and (False, torch.float32) not in seen, seen
    seen.clear()
    check_against_oracle(
        name, 1, 203, 2, 8, 24, torch.bfloat16, 1.0, "chunk", 16, seed=3, algorithm="parallel", initial_state=True
    )
    assert (False, torch.float32) in seen and (False, torch.bfloat16) not in seen, seen
    seen.clear()
    T.FWD_CHUNKS_BF16 = False
    check_against_oracle(name, 1, 203, 2, 8, 24, torch.bfloat16, 1.0, "chunk", 16, seed=3, algorithm="parallel")
    assert (False, torch.float32) in seen and (False, torch.bfloat16) not in seen, seen


def test_kept_states_fake_matches_real():
    """The forward op's fake (meta) kernel gives its kept states the shape and dtype the real kernel returns (a
    mismatch breaks ``torch.compile``), for the bf16 copy (``parallel``), fp32 (``serial``) and none (quadratic mode)."""
    fm = make_map("taylor", 4).to(DEVICE)
    q, k, v, _ = inputs(1, 37, 2, 4, 6, torch.bfloat16, 1.0)
    plan, _ = T._plan_of(fm)
    for mode, algorithm in (("chunk", "parallel"), ("chunk", "serial"), ("parallel", "serial")):
        T.FORCE_MODE, T.FORCE_CHUNK, T.ALGORITHM = mode, 16, algorithm
        args = (q, k, v, None, None, None, plan.kind, 0, 0, True, 1e-6, 0, False)
        real = T._op_fwd(*args)
        fake = T._op_fwd_fake(*args)
        for r, f in zip(real, fake):
            assert (r.shape, r.dtype) == (f.shape, f.dtype), (mode, algorithm)
        assert (real[5].numel() > 0) == (mode == "chunk")
        assert real[5].dtype == (torch.bfloat16 if algorithm == "parallel" else torch.float32) or mode != "chunk"


@pytest.mark.parametrize(
    "d,algorithm,dtype,initial_state",
    [(1, "parallel", torch.float32, True), (2, "serial", torch.float32, False), (5, "parallel", torch.bfloat16, True),
     (16, "serial", torch.float32, True), (17, "parallel", torch.float32, False), (33, "parallel", torch.float32, True)],
)  # fmt: skip
@pytest.mark.parametrize("symmetric", [True, False])
def test_taylor_layouts_match_oracle(d, algorithm, dtype, initial_state, symmetric):
    """Both of Taylor's internal layouts in the chunked mode against the fp64 oracle: output, final state and
    gradients, odd and even d′ (symmetric, odd: an unpaired middle row), one and several pair tiles. Symmetric
    (``TAYLOR_SYMMETRIC``, the default, kernel FM 7): each pair x_i·x_j stored once, √2-scaled; the rest of this file
    runs on it. Full: the d′×d′ block (``MIXERZOO_LA_TAYLOR_SYMMETRIC=0`` runs the whole file on it)."""
    T.TAYLOR_SYMMETRIC = symmetric
    assert T._plan("taylor", d).sym == symmetric
    check_against_oracle(
        "taylor", 2, 45, 2, d, 7, dtype, 1.0, "chunk", 16, seed=d, algorithm=algorithm, initial_state=initial_state
    )


def test_unknown_chunk_state_raises():
    T.CHUNK_STATE, T.ALGORITHM, T.FORCE_MODE, T.FORCE_CHUNK = "heads", "parallel", "chunk", 16
    q, k, v, _ = inputs(1, 20, 1, 3, 4, torch.float32, 1.0)
    with pytest.raises(ValueError, match=r"unknown chunk-state kernel 'heads'.*\['auto', 'tiles', 'head'\]"):
        linear_attention(q, k, v, "taylor", backend="triton")


def test_unknown_algorithm_raises():
    T.ALGORITHM, T.FORCE_MODE, T.FORCE_CHUNK = "parralel", "chunk", 16
    q, k, v, _ = inputs(1, 20, 1, 3, 4, torch.float32, 1.0)
    with pytest.raises(ValueError, match=r"unknown state algorithm 'parralel'.*\['serial', 'parallel', 'auto'\]"):
        linear_attention(q, k, v, "relu", backend="triton")


def test_auto_state_algorithm_rule():
    """``auto`` follows the H200 numbers: ``parallel`` for DI >= 64 at any chunk count (Taylor DI=320, Performer m=64),
    for narrow states (PosELU DI=16, CosFormer DI=32 at d′=16) only from 64 chunks (session 10); explicit choices
    win."""
    T.ALGORITHM = "auto"
    taylor, performer = T.make_plan("taylor", 16), T.make_plan("performer", 16, 64)
    poselu, cosformer = T.make_plan("poselu", 16), T.make_plan("cosformer", 16, 0, 4096)
    assert T._parallel_states(taylor, 1) and T._parallel_states(performer, 32)
    for plan in (poselu, cosformer):
        assert not T._parallel_states(plan, 32) and not T._parallel_states(plan, 63)
        assert T._parallel_states(plan, 64) and T._parallel_states(plan, 128) and T._parallel_states(plan, 256)
    T.ALGORITHM = "serial"
    assert not T._parallel_states(taylor, 1000)
    T.ALGORITHM = "parallel"
    assert T._parallel_states(poselu, 1)


def test_step_rule():
    """The decode rule picks the fastest measured candidate: one program per head for D <= 64 (PosELU, CosFormer,
    Performer m=64), v16-all for Taylor up to B·H = 256 and v32-all beyond."""
    narrow = [T.make_plan("poselu", 16), T.make_plan("cosformer", 16, 0, 4096), T.make_plan("performer", 16, 64)]
    for plan in narrow:
        for bh in (16, 1024, 4096):
            assert T._step_config(plan, bh, 128).bv == 128, (plan.kind, bh)
    taylor = T.make_plan("taylor", 16)
    assert T._step_config(taylor, 256, 128) == T.STEP_CONFIGS["v16-all"]
    assert T._step_config(taylor, 257, 128) == T.STEP_CONFIGS["v32-all"]
    assert T._step_config(taylor, 4096, 128) == T.STEP_CONFIGS["v32-all"]


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
    outs, states = {}, {}
    for mode, algorithm in (("chunk", "parallel"), ("parallel", "serial"), ("chunk", "serial")):
        T.FORCE_MODE, T.FORCE_CHUNK, T.ALGORITHM = mode, 16, algorithm
        outs[mode, algorithm], states[mode, algorithm] = linear_attention(
            q, k, v, fm, normalize=norm, output_final_state=True, backend="triton"
        )
    state = states["chunk", "serial"]
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
    assert rel_err(outs["chunk", "serial"], outs["parallel", "serial"]) < 2e-6
    assert rel_err(outs["chunk", "parallel"], outs["chunk", "serial"]) < 2e-6
    assert rel_err(stepped, outs["chunk", "serial"]) < 2e-6
    assert rel_err(kv, state[0]) < 2e-6 and rel_err(z, state[1]) < 2e-6
    kv_p, z_p = states["chunk", "parallel"]
    assert rel_err(kv_p, state[0]) < 2e-6 and rel_err(z_p, state[1]) < 2e-6


@pytest.mark.parametrize("name", MAPS)
@pytest.mark.parametrize("mode,algorithm", [("chunk", "serial"), ("chunk", "parallel"), ("parallel", "serial")])
def test_split_with_state_equals_one_call(name, mode, algorithm):
    """Run [0, t) with the final state out, then [t, L) from it (offset t): same outputs, state and gradients
    (both state algorithms)."""
    T.FORCE_MODE, T.FORCE_CHUNK, T.ALGORITHM = mode, 16, algorithm
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
@pytest.mark.parametrize("mode,algorithm", [("chunk", "serial"), ("chunk", "parallel"), ("parallel", "serial")])
def test_initial_state_gradients(name, mode, algorithm):
    """Gradients w.r.t. a given initial state (and through the final state) match the oracle's autograd (both
    state algorithms)."""
    T.FORCE_MODE, T.FORCE_CHUNK, T.ALGORITHM = mode, 16, algorithm
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


def step_setup(name, B, H, d, dv, seed):
    """A feature map, its normalize flag, a random state ``(kv, z)`` and the generator for the step inputs."""
    fm = make_map(name, d).to(DEVICE)
    g = torch.Generator().manual_seed(seed)
    kv = torch.rand(B, H, fm.out_dim, dv, generator=g).to(DEVICE)
    z = torch.rand(B, H, fm.out_dim, generator=g).to(DEVICE)
    return fm, normalize_for(name), kv, z, g


@pytest.mark.parametrize("name", MAPS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_step_matches_torch_step(name, dtype):
    """The decode kernel updates the canonical state in place exactly like the torch step, offset as a tensor too."""
    B, H, d, dv = 3, 2, 7, 9
    fm, norm, kv, z, g = step_setup(name, B, H, d, dv, seed=2)
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


@pytest.mark.parametrize("name", ["taylor", "performer", "cosformer"])
def test_step_reads_slices_of_a_fused_projection(name):
    """q, k, v as the mixer makes them at B > 1: column slices of one ``[B, 2·H·d + H·dv]`` projection, each row's
    heads packed, the batch stride the fused row's. The kernel reads them in place (no copy) and steps as the torch
    step does on contiguous copies."""
    B, H, d, dv = 3, 2, 5, 9
    fm, norm, kv, z, g = step_setup(name, B, H, d, dv, seed=3)
    fused = torch.randn(B, 2 * H * d + H * dv, generator=g).to(DEVICE)
    q, k, v = (t.unflatten(-1, (H, -1)) for t in fused.split([H * d, H * d, H * dv], dim=-1))
    assert not q.is_contiguous() and all(T._packed_heads(t) is t for t in (q, k, v))
    kv_t, z_t = kv.clone(), z.clone()
    for t in range(3):
        o, _ = linear_attention_step(q, k, v, (kv, z), fm, normalize=norm, offset=t, backend="triton")
        o_t, _ = linear_attention_step(
            *(x.contiguous() for x in (q, k, v)), (kv_t, z_t), fm, normalize=norm, offset=t, backend="torch"
        )
        assert rel_err(o, o_t) < 2e-6 and rel_err(kv, kv_t) < 1e-6 and rel_err(z, z_t) < 1e-6, f"step {t}"


SPLIT_STEPS = [T.StepConfig(16, 16, 4, "last"), T.StepConfig(16, 16, 4, "sep"), T.StepConfig(32, 64, 2, "last")]


@pytest.mark.parametrize("name", MAPS)
@pytest.mark.parametrize("cfg", SPLIT_STEPS, ids=lambda c: f"bv{c.bv}-bf{c.bf}-{c.zmode}")
def test_step_value_split_matches_torch_step(name, cfg):
    """The decode step with a head's value columns split over programs (ragged last tile, feature loop of several
    iterations): every program reads the old z, z is written once (last arrival or a second launch); four steps in a
    row so the arrival counter must be back at zero after each."""
    T.FORCE_STEP = cfg
    B, H, d, dv = 2, 3, 5, 40
    fm, norm, kv, z, g = step_setup(name, B, H, d, dv, seed=4)
    kv_t, z_t = kv.clone(), z.clone()
    for t in range(4):
        q, k, v = (torch.randn(B, H, n, generator=g).to(DEVICE) for n in (d, d, dv))
        o, _ = linear_attention_step(q, k, v, (kv, z), fm, normalize=norm, offset=t, backend="triton")
        o_t, _ = linear_attention_step(q, k, v, (kv_t, z_t), fm, normalize=norm, offset=t, backend="torch")
        assert rel_err(o, o_t) < 2e-6 and rel_err(kv, kv_t) < 1e-6 and rel_err(z, z_t) < 1e-6, f"step {t}"


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


class _CountLaunches:
    """Wraps a Triton kernel: counts its launches (``kernel[grid](...)``) and forwards them."""

    def __init__(self, kernel):
        self.kernel, self.launches = kernel, 0

    def __getitem__(self, grid):
        self.launches += 1
        return self.kernel[grid]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_bwd_pre_pass_fused_into_chunk_states(dtype, monkeypatch):
    """Taylor, chunked mode, parallel states (the head chunk-state kernel, dv <= 64): with ``FUSE_BWD_PRE`` the
    backward's pre kernel does not launch and the chunk-state pass writes dden; q/k/v and initial-state gradients
    match the oracle either way, and the two ways agree to rounding."""
    grads = {}
    for fuse in (True, False):
        T.FUSE_BWD_PRE = fuse
        pre = _CountLaunches(T._la_bwd_pre_kernel)
        monkeypatch.setattr(T, "_la_bwd_pre_kernel", pre)
        check_against_oracle(
            "taylor", 2, 35, 2, 4, 7, dtype, 1.0, "chunk", 16, seed=5, algorithm="parallel", initial_state=True
        )
        assert pre.launches == (0 if fuse else 1), f"fuse={fuse}: {pre.launches} pre launches"
        fm = make_map("taylor", 4).to(DEVICE)
        q, k, v, do = inputs(2, 35, 2, 4, 7, dtype, 1.0, seed=5)
        leaves = [t.clone().requires_grad_() for t in (q, k, v)]
        grads[fuse] = torch.autograd.grad(linear_attention(*leaves, fm, backend="triton"), leaves, do)
    for a, b in zip(grads[True], grads[False]):
        assert rel_err(a, b) < (1e-5 if dtype == torch.float32 else 1e-2)


@pytest.mark.parametrize("initial_state", [False, True])
def test_eager_path_equals_the_custom_ops(initial_state):
    """Eager calls skip the dispatcher (``_LinearAttention`` with ``eager``, or the forward alone without grad): same
    output, final state and gradients, bit for bit, as the custom ops that torch.compile sees; and no custom op runs
    in eager mode (a profile of the eager fwd+bwd names neither)."""
    T.FORCE_CHUNK = 16
    fm = make_map("taylor", 4).to(DEVICE)
    q, k, v, do = inputs(2, 37, 2, 4, 5, torch.bfloat16, 1.0)
    g = torch.Generator().manual_seed(7)
    s0 = torch.rand(2, 2, T._plan_of(fm)[0].di, 5, generator=g).to(DEVICE) if initial_state else None
    z0 = torch.rand(2, 2, T._plan_of(fm)[0].di, generator=g).to(DEVICE) if initial_state else None
    results = []
    for eager in (True, False):
        leaves = [t.clone().requires_grad_() for t in (q, k, v)]
        args = (*leaves, s0, z0, None, "taylor", 0, 0, True, 1e-6, 0, True)
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            o, _, _, sT, zT, _, _ = T._LinearAttention.apply(*args, eager)
            grads = torch.autograd.grad((o.float() * do.float()).sum() + sT.sum() + zT.sum(), leaves)
        ops = {e.key for e in prof.key_averages() if e.key.startswith("mixerzoo::")}
        assert (not ops) if eager else ops, f"eager={eager}: custom ops seen {ops}"
        results.append((o, sT, zT, *grads))
    with torch.no_grad():
        o_ng = T._fwd_call(q, k, v, s0, z0, None, "taylor", 0, 0, True, 1e-6, 0, True)[0]
    for a, b in zip(results[0], results[1]):
        assert torch.equal(a, b)
    assert torch.equal(o_ng, results[0][0])


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
@pytest.mark.parametrize("layout", ["two launches", "one launch", "tile pass, one launch"])
@pytest.mark.parametrize("name", ["taylor", "poselu", "performer", "cosformer"])
@pytest.mark.parametrize("initial_state", [False, True])
def test_gpu_backward_layouts(name, layout, initial_state):
    """The backward layouts other than the defaults at the benchmark's head sizes (d′=16, dv=64, bf16, L=1031 ragged,
    the H200's chunk sizes) against the fp64 oracle (Taylor has no tile pass: it runs "one launch" there)."""
    set_bwd_layout(layout)
    offset = 9 if name == "cosformer" else 0
    check_against_oracle(
        name, 2, 1031, 3, 16, 64, torch.bfloat16, 1.0, "chunk", None, offset=offset, initial_state=initial_state
    )


def _at_allocation_end(t: torch.Tensor) -> torch.Tensor:
    """A copy of ``t`` whose last element ends its own CUDA allocation (a 2 MiB-rounded segment of at least 12 MiB,
    which the caching allocator gives a block of its own): a kernel that reads past the tensor's end touches memory
    that may be unmapped (a fault) instead of a neighbour's bytes in the same segment."""
    n, elem = t.numel(), t.element_size()
    total = max(12 << 20, -(-n * elem // (2 << 20)) * (2 << 20)) // elem
    out = torch.empty(total, dtype=t.dtype, device=t.device)[total - n :].view(t.shape)
    return out.copy_(t)


@pytest.mark.gpu
@gpu
@pytest.mark.parametrize("name", ["taylor", "performer"])
def test_gpu_partial_value_tile_reads_nothing_past_the_end(name):
    """dv = 112 (head dim of the based-1.3b preset: value tiles of 64, the second one partial), chunked mode, with v
    and the upstream gradient ending their allocations. Before ``_load_vtile`` the chunk-state kernels read the last
    tile's columns up to 128 of the last row: 16 elements past v's end (an illegal address on the H200 in the 1.3B
    prefill of 4,096 tokens)."""
    T.FORCE_MODE, T.ALGORITHM = "chunk", "parallel"
    fm = make_map(name, 16).to(DEVICE)
    q, k, v, do = inputs(1, 4096, 16, 16, 112, torch.bfloat16, 1.0)
    v, do = _at_allocation_end(v), _at_allocation_end(do)
    leaves = [t.requires_grad_() for t in (q, k, v)]
    o = linear_attention(*leaves, fm, backend="triton")
    grads = torch.autograd.grad(o, leaves, do)
    torch.cuda.synchronize()
    ref = linear_attention(*(t.detach().float() for t in (q, k, v)), fm, backend="torch")
    assert rel_err(o, ref) < 2e-2
    assert all(torch.isfinite(g).all() for g in grads)


@pytest.mark.gpu
@gpu
@pytest.mark.parametrize("d,dv", [(16, 64), (24, 256), (64, 48)])
@pytest.mark.parametrize("symmetric", [True, False])
def test_gpu_taylor_layouts(d, dv, symmetric):
    """Both of Taylor's internal layouts on the GPU at realistic shapes, chunked mode, from an initial state."""
    T.TAYLOR_SYMMETRIC = symmetric
    check_against_oracle(
        "taylor", 2, 1031, 3, d, dv, torch.bfloat16, 1.0, "chunk", None, algorithm="parallel", initial_state=True
    )


@pytest.mark.gpu
@gpu
@pytest.mark.parametrize("name,d,dv", [(name, 16, 64) for name in MAPS] + [("taylor", 24, 256), ("performer", 7, 100)])
def test_gpu_parallel_states(name, d, dv):
    """The ``parallel`` state algorithm at realistic shapes (chunked mode, default chunk), from an initial state."""
    offset = 9 if name == "cosformer" else 0
    check_against_oracle(
        name, 2, 1031, 3, d, dv, torch.bfloat16, 1.0, "chunk", None, offset=offset, algorithm="parallel",
        initial_state=True,
    )  # fmt: skip


@pytest.mark.gpu
@gpu
@pytest.mark.parametrize(
    "name,d,dv,chunk",
    [("taylor", 16, 64, 128), ("taylor", 16, 64, 64), ("taylor", 24, 256, 32), ("taylor", 64, 48, 128),
     ("performer", 16, 64, 64)],
)  # fmt: skip
def test_gpu_chunk_state_head(name, d, dv, chunk):
    """The ``head`` chunk-state kernel at realistic shapes (parallel states, from an initial state): Taylor at both
    chunk sizes its default uses (BT=128 at 8 warps, 64 at 4), four value tiles (dv=256), R=1 (d′=64); Performer."""
    T.CHUNK_STATE = "head"
    check_against_oracle(
        name, 2, 1031, 3, d, dv, torch.bfloat16, 1.0, "chunk", chunk, algorithm="parallel", initial_state=True
    )


@pytest.mark.gpu
@gpu
@pytest.mark.parametrize("name,d,dv", [("taylor", 16, 64), ("taylor", 24, 256), ("performer", 16, 64)])
def test_gpu_serial_states(name, d, dv):
    """The ``serial`` state algorithm where ``auto`` would take ``parallel`` (chunked mode, default chunk)."""
    check_against_oracle(
        name, 2, 1031, 3, d, dv, torch.bfloat16, 1.0, "chunk", None, algorithm="serial", initial_state=True
    )


@pytest.mark.gpu
@gpu
@pytest.mark.parametrize("name", MAPS)
@pytest.mark.parametrize("dots_bf16", [True, False])
def test_gpu_dot_precisions(name, dots_bf16):
    """bf16 inputs with bf16 products (the default) and with tf32 ones, at a large input scale (2.5: peaked attention)
    over several chunks from an initial state, and at L = 1 (o = v: the gradients' cancellations)."""
    T.DOTS_BF16 = dots_bf16
    offset = 9 if name == "cosformer" else 0
    check_against_oracle(
        name, 2, 1031, 3, 16, 64, torch.bfloat16, 2.5, "chunk", None, offset=offset, initial_state=True
    )  # fmt: skip
    check_against_oracle(name, 2, 1, 3, 16, 64, torch.bfloat16, 2.5, None, None, offset=offset)


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
@pytest.mark.parametrize("config", list(T.STEP_CONFIGS))
@pytest.mark.parametrize("name", ["taylor", "performer", "cosformer"])
def test_gpu_step_configs(name, config):
    """Every decode candidate at the benchmark's shape (B=64, H=16, d′=16, dv=128), captured in a CUDA graph of five
    steps (the arrival counter is reused by every step), against the torch step."""
    T.FORCE_STEP = T.STEP_CONFIGS[config]
    B, H, d, dv = 64, 16, 16, 128
    fm = make_map(name, d).to(DEVICE)
    D = fm.out_dim
    kv, z = torch.rand(B, H, D, dv, device=DEVICE), torch.rand(B, H, D, device=DEVICE)
    kv_e, z_e = kv.clone(), z.clone()
    q, k, v = (torch.randn(B, H, n, device=DEVICE, dtype=torch.bfloat16) for n in (d, d, dv))
    pos = torch.tensor(5, device=DEVICE)
    linear_attention_step(q, k, v, (kv.clone(), z.clone()), fm, offset=pos)  # compile first
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        outs = [linear_attention_step(q, k, v, (kv, z), fm, offset=pos)[0] for _ in range(5)]
    graph.replay()
    for t in range(5):
        o_e, _ = linear_attention_step(q, k, v, (kv_e, z_e), fm, offset=5, backend="torch")
        assert rel_err(outs[t], o_e) < 1e-2, f"step {t}"
    assert rel_err(kv, kv_e) < 1e-6 and rel_err(z, z_e) < 1e-6


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
