"""Per-launch GPU times of one Taylor fwd+bwd (ordered), to separate the backward's two halves."""

import sys

import torch

sys.path.insert(0, ".")
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile

from mixerzoo.feature_maps import feature_map
from mixerzoo.kernels.linear_attention import linear_attention

B, H, DK, DV = 4, 16, 16, 64
for name, opts in (("taylor", {}), ("performer", {"m": 64})):
    for L in (4096, 16384):
        g = torch.Generator(device="cuda").manual_seed(0)
        q, k = (
            torch.randn(B, L, H, DK, device="cuda", dtype=torch.bfloat16, generator=g).requires_grad_()
            for _ in range(2)
        )
        v = torch.randn(B, L, H, DV, device="cuda", dtype=torch.bfloat16, generator=g).requires_grad_()
        do = torch.randn_like(v)
        fm = feature_map(name, DK, **opts).cuda()
        for _ in range(3):
            torch.autograd.grad(linear_attention(q, k, v, fm), (q, k, v), do)
        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            torch.autograd.grad(linear_attention(q, k, v, fm), (q, k, v), do)
            torch.cuda.synchronize()
        evs = sorted(
            (e for e in prof.events() if e.device_type != DeviceType.CPU and e.device_time_total > 0),
            key=lambda e: e.time_range.start,
        )
        tot = 0
        print(f"== {name} L={L}")
        for e in evs:
            print(f"  {e.name[:60]:60s} {e.device_time_total / 1e3:8.3f} ms")
            tot += e.device_time_total / 1e3
        print(f"  total kernels {tot:.3f} ms; span {(evs[-1].time_range.end - evs[0].time_range.start) / 1e3:.3f} ms")
