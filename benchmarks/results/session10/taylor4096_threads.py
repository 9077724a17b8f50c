"""Taylor fwd+bwd at L=4096 (B=4, H=16, d′=16, dv=64, bf16) beside FLA's ``parallel_based``, four alternated rounds in
one process, each with autograd's device thread (the default) and with the backward on the calling thread, and with
the forward's chunk contributions in bf16 (``FWD_CHUNKS_BF16``, session 10) and in fp32. Median ms of
``triton.testing.do_bench`` per cell. Written in session 10:
``PYTHONPATH=/tmp/site:. python3 benchmarks/results/session10/taylor4096_threads.py`` (FLA on the path)."""

import sys

import torch
from triton.testing import do_bench

sys.path.insert(0, ".")
sys.path.append("benchmarks")
from fla.ops.based import parallel_based  # noqa: E402
from linear_attention import DK, make_inputs  # noqa: E402

from mixerzoo.feature_maps import feature_map  # noqa: E402
from mixerzoo.kernels.linear_attention import linear_attention  # noqa: E402
from mixerzoo.kernels.linear_attention import triton_ops as T  # noqa: E402

q, k, v, do = make_inputs(4096)
q, k, v = (t.requires_grad_() for t in (q, k, v))
fm = feature_map("taylor", DK).cuda()


def ours(chunks_bf16: bool):
    def f():
        T.FWD_CHUNKS_BF16 = chunks_bf16
        return linear_attention(q, k, v, fm)

    return f


impls = {
    "mixerzoo (bf16 chunks)": ours(True),
    "mixerzoo (fp32 chunks)": ours(False),
    "fla.parallel_based": lambda: parallel_based(q, k, v, scale=DK**-0.5, use_norm=True),
}
for _round in range(4):
    for threads in (True, False):
        ms = {}
        with torch.autograd.set_multithreading_enabled(threads):
            for name, f in impls.items():
                ms[name] = do_bench(lambda f=f: torch.autograd.grad(f(), (q, k, v), do), warmup=25, rep=100)
        peer = ms["fla.parallel_based"]
        where = "device thread " if threads else "calling thread"
        print(
            f"round {_round} {where}  "
            + "  ".join(
                f"{n} {t:.3f} ms" + ("" if n.startswith("fla") else f" ({peer / t:.2f}x)") for n, t in ms.items()
            ),
            flush=True,
        )
T.FWD_CHUNKS_BF16 = True
