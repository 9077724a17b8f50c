"""A/B of session 8's three switches on LA fwd+bwd (B=4, H=16, d′=16, dv=64, bf16), same process, settings
alternated: median ms of triton.testing.do_bench per (map, L, setting), three rounds. The switches: the backward's
one-pass feature tiles (``BWD_TILE_PASS``) and one-launch halves (``BWD_ONE_LAUNCH``), and the fast launch path
(``mixerzoo.kernels._launch.FAST_LAUNCH``). Written in session 8 for the next device
session (session 8 had no device time): ``python3 benchmarks/results/session8/ab.py`` from the repository root."""

import sys

import torch
from triton.testing import do_bench

sys.path.insert(0, ".")
sys.path.append("benchmarks")
from linear_attention import make_inputs  # noqa: E402  (benchmarks/linear_attention.py: B=4, H=16, d′=16, dv=64, bf16)

from mixerzoo.feature_maps import feature_map  # noqa: E402
from mixerzoo.kernels import _launch  # noqa: E402
from mixerzoo.kernels.linear_attention import linear_attention  # noqa: E402
from mixerzoo.kernels.linear_attention import triton_ops as T  # noqa: E402

DK = 16  # d′, as in make_inputs
OFF = dict(BWD_ONE_LAUNCH=False, BWD_TILE_PASS=False, FAST_LAUNCH=False)
SETTINGS = {
    "default": {},
    "fast launch": dict(FAST_LAUNCH=True),
    "tile pass": dict(BWD_TILE_PASS=True),
    "one launch": dict(BWD_ONE_LAUNCH=True),
    "all three": dict(BWD_ONE_LAUNCH=True, BWD_TILE_PASS=True, FAST_LAUNCH=True),
}


def apply(setting: dict) -> None:
    for n, val in {**OFF, **setting}.items():
        setattr(_launch if n == "FAST_LAUNCH" else T, n, val)


CASES = [("taylor", {}, 4096), ("taylor", {}, 8192), ("taylor", {}, 16384), ("performer", {"m": 64}, 8192),
         ("performer", {"m": 64}, 16384), ("poselu", {}, 16384), ("cosformer", {"max_len": 32768}, 16384)]  # fmt: skip
for name, opts, L in CASES:
    q, k, v, do = make_inputs(L)
    q, k, v = (t.requires_grad_() for t in (q, k, v))
    fm = feature_map(name, DK, **opts).cuda()

    def fb(q=q, k=k, v=v, fm=fm, do=do):
        torch.autograd.grad(linear_attention(q, k, v, fm), (q, k, v), do)

    res = {s: [] for s in SETTINGS}
    for _ in range(3):
        for s, setting in SETTINGS.items():
            apply(setting)
            fb()
            res[s].append(do_bench(fb, warmup=25, rep=100))
    print(
        f"{name:10s} L={L:6d} " + "  ".join(f"{s}: {' '.join(f'{t:.3f}' for t in ts)}" for s, ts in res.items()),
        flush=True,
    )
