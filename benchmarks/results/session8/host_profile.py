"""Where the host's time goes in one Taylor fwd+bwd at L=4096 on the GPU machine (real launches, no sync): the host
µs per call with and without autograd's device threads, with Triton's launch path and with ``FAST_LAUNCH``
(alternated), then a cProfile over 50 calls (the backward on the calling thread), sorted by own time."""

import cProfile
import pstats
import sys
import time

import torch

sys.path.insert(0, ".")
from mixerzoo.feature_maps import feature_map  # noqa: E402
from mixerzoo.kernels import _launch  # noqa: E402
from mixerzoo.kernels.linear_attention import linear_attention  # noqa: E402

B, H, DK, DV, L = 4, 16, 16, 64, 4096
g = torch.Generator(device="cuda").manual_seed(0)
q, k = (torch.randn(B, L, H, DK, device="cuda", dtype=torch.bfloat16, generator=g).requires_grad_() for _ in range(2))
v = torch.randn(B, L, H, DV, device="cuda", dtype=torch.bfloat16, generator=g).requires_grad_()
do = torch.randn_like(v)
fm = feature_map("taylor", DK).cuda()


def fb():
    o = linear_attention(q, k, v, fm)
    torch.autograd.grad(o, (q, k, v), do)


for _ in range(10):
    fb()
torch.cuda.synchronize()
for _round in range(2):
    for fast in (False, True):
        for threads in (True, False):
            _launch.FAST_LAUNCH = fast
            with torch.autograd.set_multithreading_enabled(threads):
                fb()
                torch.cuda.synchronize()
                t0 = time.perf_counter()
                for _ in range(50):
                    fb()
                t = (time.perf_counter() - t0) / 50
                torch.cuda.synchronize()
            print(
                f"host {t * 1e6:.0f} us per fwd+bwd (back to back), autograd device threads {threads}, "
                f"FAST_LAUNCH {fast}",
                flush=True,
            )
_launch.FAST_LAUNCH = False
t0 = time.perf_counter()
for _ in range(50):
    o = linear_attention(q, k, v, fm)
print(f"host {(time.perf_counter() - t0) / 50 * 1e6:.0f} us per forward with grad (back to back)", flush=True)
torch.cuda.synchronize()
# the backward on this thread, so that the profiler sees it
with torch.autograd.set_multithreading_enabled(False):
    pr = cProfile.Profile()
    pr.enable()
    for _ in range(50):
        fb()
    pr.disable()
torch.cuda.synchronize()
st = pstats.Stats(pr)
st.sort_stats("tottime").print_stats(30)
st.sort_stats("cumulative").print_stats(40)
