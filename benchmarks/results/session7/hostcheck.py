"""Host cost of one LA fwd+bwd on the GPU machine: sync check, host µs per call (back to back), GPU µs per call."""

import sys
import time

import torch

sys.path.insert(0, ".")
from mixerzoo.feature_maps import feature_map
from mixerzoo.kernels.linear_attention import linear_attention

B, H, DK, DV = 4, 16, 16, 64
for name, opts in (("taylor", {}), ("poselu", {}), ("performer", {"m": 64})):
    L = 4096
    g = torch.Generator(device="cuda").manual_seed(0)
    q, k = (
        torch.randn(B, L, H, DK, device="cuda", dtype=torch.bfloat16, generator=g).requires_grad_() for _ in range(2)
    )
    v = torch.randn(B, L, H, DV, device="cuda", dtype=torch.bfloat16, generator=g).requires_grad_()
    do = torch.randn_like(v)
    fm = feature_map(name, DK, **opts).cuda()

    def fb(q=q, k=k, v=v, fm=fm, do=do):
        o = linear_attention(q, k, v, fm)
        torch.autograd.grad(o, (q, k, v), do)

    for _ in range(5):
        fb()
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("warn")
    import warnings

    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        fb()
    torch.cuda.set_sync_debug_mode(0)
    print(f"{name}: sync warnings in one fwd+bwd: {len(w)}", [str(x.message)[:160] for x in w][:3], flush=True)
    torch.cuda.synchronize()
    n = 50
    t0 = time.perf_counter()
    for _ in range(n):
        fb()
    t_host = (time.perf_counter() - t0) / n
    torch.cuda.synchronize()
    t_all = (time.perf_counter() - t0) / n
    e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    # GPU time with the host ahead: queue 50 calls behind a long kernel so launches are not on the critical path
    x = torch.empty(1 << 28, device="cuda")
    torch.cuda.synchronize()
    x.normal_()
    e0.record()
    for _ in range(n):
        fb()
    e1.record()
    torch.cuda.synchronize()
    print(
        f"{name} L={L}: host {t_host * 1e6:.0f} us/call issued back to back; wall incl. drain {t_all * 1e6:.0f} us/call; "
        f"events {e0.elapsed_time(e1) / n * 1e3:.0f} us/call",
        flush=True,
    )
    # forward alone
    t0 = time.perf_counter()
    with torch.no_grad():
        for _ in range(n):
            linear_attention(q, k, v, fm)
    print(f"{name} L={L}: fwd host {(time.perf_counter() - t0) / n * 1e6:.0f} us/call", flush=True)
    torch.cuda.synchronize()
