"""Taylor fwd+bwd at L=4096 (B=4, H=16, d′=16, dv=64, bf16) beside FLA's ``parallel_based``, alternated for five
rounds in one process: how much the ratio moves from run to run on the H200's host (a 4096-token fwd+bwd is close to
host-bound there). Median ms of ``triton.testing.do_bench`` per round. Written in session 9:
``PYTHONPATH=/tmp/site:. python3 benchmarks/results/session9/taylor4096_repeat.py`` (FLA on the path)."""

import sys

import torch
from triton.testing import do_bench

sys.path.insert(0, ".")
sys.path.append("benchmarks")
from fla.ops.based import parallel_based  # noqa: E402
from linear_attention import DK, make_inputs  # noqa: E402

from mixerzoo.feature_maps import feature_map  # noqa: E402
from mixerzoo.kernels.linear_attention import linear_attention  # noqa: E402

q, k, v, do = make_inputs(4096)
q, k, v = (t.requires_grad_() for t in (q, k, v))
fm = feature_map("taylor", DK).cuda()
impls = {
    "mixerzoo": lambda: linear_attention(q, k, v, fm),
    "fla.parallel_based": lambda: parallel_based(q, k, v, scale=DK**-0.5, use_norm=True),
}
for _round in range(5):
    ms = {}
    for name, f in impls.items():
        ms[name] = do_bench(lambda f=f: torch.autograd.grad(f(), (q, k, v), do), warmup=25, rep=100)
    ratio = ms["fla.parallel_based"] / ms["mixerzoo"]
    print("  ".join(f"{n} {t:.3f} ms" for n, t in ms.items()) + f"  ratio {ratio:.2f}x", flush=True)
