"""The batch-1 decode projection (``mixerzoo.kernels.decode_linear``) against the fp64 oracle ``x·Wᵀ + b``.

On the CPU the kernel runs under ``TRITON_INTERPRET=1`` (set below, before triton is imported) with small shapes and
chunks of 16 along K, so most shapes take several chunks; ``-m gpu`` runs the model shapes on CUDA. Errors are
relative, ``‖out − ref‖ / ‖ref‖``, against the oracle on the very same (rounded) inputs: fp32 1e-5 (fp32 sums), fp16
4e-3 and bf16 2e-2 (one rounding of every output, unit roundoff 4.9e-4 and 3.9e-3).
"""

from __future__ import annotations

import os

os.environ.setdefault("TRITON_INTERPRET", "0" if os.environ.get("MIXERZOO_GPU_TESTS") else "1")

import pytest  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import mixerzoo as zoo  # noqa: E402
from mixerzoo.kernels import decode_linear as D  # noqa: E402

triton_ops = pytest.importorskip("mixerzoo.kernels.decode_linear.triton_ops")

TOL = {torch.float32: 1e-5, torch.float16: 4e-3, torch.bfloat16: 2e-2}
INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"
cpu_only = pytest.mark.skipif(not INTERPRET, reason="interpreter tests (TRITON_INTERPRET=1, the default off-GPU)")
FEW = dict(
    deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, phases=(Phase.explicit, Phase.generate)
)


def reference(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
    y = x.double() @ w.double().T
    return y + b.double() if b is not None else y


def check(N: int, K: int, has_bias: bool, dtype: torch.dtype, device: str, lead=(1,), seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(*lead, K, generator=g).to(device=device, dtype=dtype)
    w = (torch.randn(N, K, generator=g) * K**-0.5).to(device=device, dtype=dtype)
    b = torch.randn(N, generator=g).to(device=device, dtype=dtype) if has_bias else None
    y = triton_ops.decode_linear_triton(x, w, b)
    assert y.shape == (*lead, N) and y.dtype == dtype
    assert torch.isfinite(y).all(), "non-finite output (an element left unwritten?)"
    ref = reference(x, w, b)
    err = ((y.double() - ref).norm() / ref.norm().clamp_min(1e-30)).item()
    assert err <= TOL[dtype], f"N={N} K={K} bias={has_bias} {dtype}: relative error {err:.3g} > {TOL[dtype]:.3g}"


@cpu_only
@settings(max_examples=20, **FEW)
@given(
    N=st.integers(1, 70),
    K=st.integers(1, 70),
    has_bias=st.booleans(),
    dtype=st.sampled_from([torch.float32, torch.bfloat16, torch.float16]),
    lead=st.sampled_from([(1,), (), (1, 1)]),
)
def test_decode_linear_matches_fp64(N, K, has_bias, dtype, lead):
    """Any N (partial last block of 4 rows) and K (one chunk of 16, several, a partial last one), with and without a
    bias, x as ``[1, K]``, ``[K]`` or ``[1, 1, K]``."""
    check(N, K, has_bias, dtype, "cpu", lead)


@cpu_only
@pytest.mark.parametrize("N,K", [(4, 16), (5, 17), (3, 48), (64, 1)])
def test_decode_linear_chunk_edges(N, K):
    """K at a chunk boundary, one past it, exactly three chunks, a single column."""
    check(N, K, True, torch.float32, "cpu")


@cpu_only
def test_decode_linear_rejects_bad_input():
    x, w = torch.randn(1, 8), torch.randn(5, 8)
    with pytest.raises(ValueError, match="one row of x"):
        triton_ops.decode_linear_triton(torch.randn(2, 8), w)
    with pytest.raises(ValueError, match="weight \\[N, K\\]"):
        triton_ops.decode_linear_triton(torch.randn(1, 7), w)
    with pytest.raises(ValueError, match="bias \\[N = 5\\]"):
        triton_ops.decode_linear_triton(x, w, torch.randn(4))
    with pytest.raises(ValueError, match="dtype|one of"):
        triton_ops.decode_linear_triton(x, w.double())


def test_decode_gemv_is_on_by_default():
    """On since its GPU tests and the end-to-end step ran on the H200 (session 13); ``MIXERZOO_DECODE_GEMV=0`` turns it
    off."""
    if os.environ.get("MIXERZOO_DECODE_GEMV") is None:
        assert D.DECODE_GEMV is True


def test_linear_is_nn_linear_off_cuda():
    """Same parameters and state dict as nn.Linear; off CUDA (and with autograd) every call is F.linear, exactly."""
    torch.manual_seed(0)
    lin = D.Linear(12, 7)
    ref = torch.nn.Linear(12, 7)
    ref.load_state_dict(lin.state_dict())
    assert set(lin.state_dict()) == {"weight", "bias"}
    x = torch.randn(1, 12)
    assert not D.uses_decode_gemv(x, lin.weight, lin.bias)
    with torch.no_grad():
        assert torch.equal(lin(x), F.linear(x, lin.weight, lin.bias))
    assert torch.equal(lin(x), ref(x))


@cpu_only
def test_batch_one_generation_through_the_gemv_equals_f_linear(monkeypatch):
    """The GEMV inside a model's decode step (eager and compiled), on the CPU under the interpreter: every single-row
    projection routed to it (``uses_decode_gemv`` patched to ignore the device) generates the same tokens as
    ``F.linear``, and the custom op is what the step called."""
    torch.manual_seed(0)
    model = zoo.build("taylor4-sw8-conv3-attn", d_model=32, vocab_size=50, n_heads=2, max_len=64).eval()
    prompt = torch.randint(0, 50, (1, 5))
    ref = model.generate(prompt, 6)
    calls = []

    def on_cpu(x, weight, bias=None):
        single = x.numel() == weight.shape[-1] and not torch.is_grad_enabled()
        calls.append(single)
        return single

    monkeypatch.setattr(D, "uses_decode_gemv", on_cpu)
    assert torch.equal(model.generate(prompt, 6), ref)
    assert any(calls), "no projection took the GEMV"
    assert torch.equal(model.generate(prompt, 6, compile_step=True), ref)


def test_models_use_linear_for_every_projection():
    model = zoo.build("taylor4-sw8-conv3-attn", d_model=32, vocab_size=50, n_heads=2)
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert linears and all(isinstance(m, D.Linear) for m in linears)


# ---------------------------------------------------------------------------------------------- GPU
gpu = pytest.mark.gpu
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@gpu
@needs_cuda
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
@pytest.mark.parametrize(
    "N,K,has_bias",
    [(2048, 1024, True), (1024, 2752, False), (5504, 1024, False), (50304, 1024, False), (1792, 4800, False),
     (37, 4097, True)],
)  # fmt: skip
def test_gpu_decode_linear_matches_fp64(N, K, has_bias, dtype):
    """Based-360M's and 1.3B's projection shapes (K=4800: two chunks at bf16), the padded head, and odd sizes."""
    check(N, K, has_bias, dtype, "cuda", seed=N + K)


@pytest.fixture
def gemv_on(monkeypatch):
    """``DECODE_GEMV`` on (the default), whatever ``MIXERZOO_DECODE_GEMV`` says."""
    monkeypatch.setattr(D, "DECODE_GEMV", True)


@gpu
@needs_cuda
def test_gpu_linear_takes_the_gemv_for_one_row_without_autograd(gemv_on):
    lin = D.Linear(1024, 3072, bias=False, device="cuda", dtype=torch.bfloat16)
    x = torch.randn(1, 1024, device="cuda", dtype=torch.bfloat16)
    assert not D.uses_decode_gemv(x, lin.weight)  # the weight needs grad and grad mode is on
    with torch.no_grad():
        assert D.uses_decode_gemv(x, lin.weight)
        assert not D.uses_decode_gemv(torch.randn(2, 1024, device="cuda", dtype=torch.bfloat16), lin.weight)
        y = lin(x)
    ref = reference(x, lin.weight, None)
    assert ((y.double() - ref).norm() / ref.norm()).item() < TOL[torch.bfloat16]


@gpu
@needs_cuda
@pytest.mark.parametrize("spec", ["taylor16-sw8-conv3-attn", "based-360m"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_gpu_batch_one_generation_graphed_and_compiled_equals_eager(gemv_on, spec, dtype):
    """At batch 1 every projection of the decode step is the GEMV (with PDL on sm_90+): graphed generation equals
    eager token for token (the same kernels); the compiled step too in fp32. In bf16 inductor's fused norms round
    differently from eager's, which can flip a near-tie of the argmax (session 13, call 1: one of the two specs did),
    so there the compiled step's logits are compared with eager's step by step instead."""
    torch.manual_seed(0)
    kwargs = {"d_model": 256, "n_heads": 4} if spec.startswith("based") else {"d_model": 128}
    model = zoo.build(spec, vocab_size=1000, **kwargs, device="cuda", dtype=dtype).eval()
    prompt = torch.randint(0, 1000, (1, 37), device="cuda")
    eager = model.generate(prompt, 24, cuda_graph=False)
    assert torch.equal(eager, model.generate(prompt, 24, cuda_graph=True))
    if dtype == torch.float32:
        assert torch.equal(eager, model.generate(prompt, 24, cuda_graph=True, compile_step=True))
        return
    with torch.no_grad():
        _, s_eager = model.prefill(prompt, capacity=64)
        _, s_comp = model.prefill(prompt, capacity=64)
        compiled = model.decode_step(s_comp, compile_step=True)
        token = eager[:, prompt.shape[1]]
        for i in range(8):
            ref = model.step(token, s_eager)[0]
            out = compiled(token, s_comp)
            err = ((out.double() - ref.double()).norm() / ref.double().norm()).item()
            assert err < 2e-2, f"step {i}: compiled step's logits {err:.3g} from eager's (relative), above 2e-2"
            token = eager[:, prompt.shape[1] + 1 + i]
