"""A/B of the backward's layouts on LA fwd+bwd (B=4, H=16, d′=16, dv=64, bf16), same process, settings alternated:
median ms of triton.testing.do_bench per (map, L, setting), three rounds. Written in session 8 for the next device
session (session 8 had no device time): ``python3 benchmarks/results/session8/ab.py`` from the repository root."""

import sys

import torch
from triton.testing import do_bench

sys.path.insert(0, ".")
from mixerzoo.feature_maps import feature_map  # noqa: E402
from mixerzoo.kernels.linear_attention import linear_attention  # noqa: E402
from mixerzoo.kernels.linear_attention import triton_ops as T  # noqa: E402

B, H, DK, DV = 4, 16, 16, 64
SETTINGS = {
    "default": dict(BWD_ONE_LAUNCH=False, BWD_TILE_PASS=False),
    "tile pass": dict(BWD_ONE_LAUNCH=False, BWD_TILE_PASS=True),
    "one launch": dict(BWD_ONE_LAUNCH=True, BWD_TILE_PASS=False),
    "both": dict(BWD_ONE_LAUNCH=True, BWD_TILE_PASS=True),
}
CASES = [("taylor", {}, 4096), ("taylor", {}, 8192), ("taylor", {}, 16384), ("performer", {"m": 64}, 8192),
         ("performer", {"m": 64}, 16384), ("poselu", {}, 16384), ("cosformer", {"max_len": 32768}, 16384)]  # fmt: skip
for name, opts, L in CASES:
    g = torch.Generator(device="cuda").manual_seed(0)
    q, k = (
        torch.randn(B, L, H, DK, device="cuda", dtype=torch.bfloat16, generator=g).requires_grad_() for _ in range(2)
    )
    v = torch.randn(B, L, H, DV, device="cuda", dtype=torch.bfloat16, generator=g).requires_grad_()
    do = torch.randn_like(v)
    fm = feature_map(name, DK, **opts).cuda()

    def fb(q=q, k=k, v=v, fm=fm, do=do):
        torch.autograd.grad(linear_attention(q, k, v, fm), (q, k, v), do)

    res = {s: [] for s in SETTINGS}
    for _ in range(3):
        for s, kv in SETTINGS.items():
            for n, val in kv.items():
                setattr(T, n, val)
            fb()
            res[s].append(do_bench(fb, warmup=25, rep=100))
    print(
        f"{name:10s} L={L:6d} " + "  ".join(f"{s}: {' '.join(f'{t:.3f}' for t in ts)}" for s, ts in res.items()),
        flush=True,
    )
