"""PosELU, ReLU (D=16) and CosFormer (D=32) fwd+bwd at L=8192 (B=4, H=16, d′=16, dv=64, bf16) with the ``parallel``
state algorithm (the new ``auto`` choice from 64 chunks on, session 10), beside FLA's ``fused_chunk_linear_attn`` at
the same D (elu+1 features materialized outside, normalizer included; FLA's ``chunk_linear_attn`` faults at these
widths here), in one process, the backward on the calling thread, rows printed as they finish. Written in session 10:
``PYTHONPATH=/tmp/site:. taskset -c 5 python3 benchmarks/results/session10/narrow_same_run.py [L]``."""

import sys

import torch
from triton.testing import do_bench

sys.path.insert(0, ".")
sys.path.append("benchmarks")
from linear_attention import DK, make_inputs  # noqa: E402

from mixerzoo.feature_maps import feature_map  # noqa: E402
from mixerzoo.kernels.linear_attention import linear_attention  # noqa: E402
from mixerzoo.kernels.linear_attention import triton_ops as T  # noqa: E402

L = int(sys.argv[1]) if len(sys.argv) > 1 else 8192
T.ALGORITHM = "parallel"
q, k, v, do = make_inputs(L)


def fb_ms(f, leaves) -> float:
    req = [x.detach().requires_grad_() for x in leaves]

    def fb():
        torch.autograd.grad(f(*req), req, do)

    with torch.autograd.set_multithreading_enabled(False):
        return do_bench(fb, warmup=15, rep=60, return_mode="median")


ours = {}
for name, opts in (("poselu", {}), ("relu", {}), ("cosformer", {"max_len": 32768})):
    fm = feature_map(name, DK, **opts).cuda()
    ours[name] = fb_ms(lambda a, b, c, fm=fm: linear_attention(a, b, c, fm), (q, k, v))
    print(f"mixerzoo {name:10s} D={fm.out_dim:3d} L={L}: {ours[name]:.3f} ms", flush=True)
from fla.ops.linear_attn import fused_chunk_linear_attn  # noqa: E402

for d, maps in ((16, ("poselu", "relu")), (32, ("cosformer",))):
    g = torch.Generator(device="cuda").manual_seed(d)
    x = torch.randn(2, 4, L, 16, d, device="cuda", generator=g)
    pq, pk = ((torch.nn.functional.elu(t) + 1).to(torch.bfloat16) for t in x)
    t = fb_ms(lambda a, b, c: fused_chunk_linear_attn(a, b, c, scale=1.0, normalize=True)[0], (pq, pk, v))
    ratios = ", ".join(f"{m} {t / ours[m]:.2f}x" for m in maps)
    print(f"fla.fused_chunk_linear_attn D={d} L={L}: {t:.3f} ms; ours faster by {ratios}", flush=True)
