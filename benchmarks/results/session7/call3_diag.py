"""Which LA kernel faults with bf16 products: only the named kernels (argv[1], comma-separated, or 'all' / 'none')
launch with PREC=bf16, the rest with tf32. argv[2]: L."""

import sys

import torch

sys.path.insert(0, ".")
from mixerzoo.feature_maps import feature_map
from mixerzoo.kernels.linear_attention import linear_attention
from mixerzoo.kernels.linear_attention import triton_ops as T

on = sys.argv[1].split(",")
L = int(sys.argv[2])


class Proxy:
    def __init__(self, name, k):
        self.name, self.k = name, k

    def __getitem__(self, grid):
        f = self.k[grid]

        def launch(*a, **kw):
            tag = self.name + ("" if "DO_Q" not in kw else (":q" if kw["DO_Q"] else ":kv"))
            if kw.get("PREC") == "bf16" and "all" not in on and tag not in on and self.name not in on:
                kw["PREC"] = "tf32"
            return f(*a, **kw)

        return launch

    def __getattr__(self, a):
        return getattr(self.k, a)


for n in dir(T):
    if n.startswith("_la_") and n.endswith("_kernel"):
        setattr(T, n, Proxy(n, getattr(T, n)))
B, H, DK, DV = 2, 16, 16, 64
for name, opts, algo in (
    ("taylor", {}, "parallel"),
    ("taylor", {}, "serial"),
    ("performer", {"m": 64}, "parallel"),
    ("poselu", {}, "serial"),
):
    T.ALGORITHM = algo
    g = torch.Generator(device="cuda").manual_seed(0)
    q, k = (
        torch.randn(B, L, H, DK, device="cuda", dtype=torch.bfloat16, generator=g).requires_grad_() for _ in range(2)
    )
    v = torch.randn(B, L, H, DV, device="cuda", dtype=torch.bfloat16, generator=g).requires_grad_()
    fm = feature_map(name, DK, **opts).cuda()
    o = linear_attention(q, k, v, fm)
    torch.cuda.synchronize()
    gr = torch.autograd.grad(o, (q, k, v), torch.randn_like(o))
    torch.cuda.synchronize()
    ref = linear_attention(*(t.detach().float() for t in (q, k, v)), fm, backend="torch")
    print(
        f"  {sys.argv[1]} {name} {algo} L={L} ok, o rel err {float((o.float() - ref).norm() / ref.norm()):.2e}",
        flush=True,
    )
