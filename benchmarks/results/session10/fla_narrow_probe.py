"""Which of FLA 0.6.0's linear-attention kernels run at the narrow state widths of PosELU / ReLU (D=16) and CosFormer
(D=32) on this stack: ``chunk_linear_attn`` ends in an illegal memory access there in bf16 (sessions 1, 9). Each
(kernel, D, dtype) in a child process of its own (a fault ends the CUDA context), fwd+bwd at B=4, L=8192, H=16, dv=64,
elu+1 features, normalizer included, ``do_bench`` median ms with the backward on the calling thread, or the error.
Written in session 10: ``PYTHONPATH=/tmp/site:. python3 benchmarks/results/session10/fla_narrow_probe.py``."""

import json
import subprocess
import sys

CASES = [("fused_chunk", 16, "bf16"), ("fused_chunk", 32, "bf16"), ("chunk", 16, "fp16"), ("fused_chunk", 64, "bf16")]

if len(sys.argv) > 1:  # the child: one case
    import torch
    from fla.ops.linear_attn import chunk_linear_attn, fused_chunk_linear_attn
    from triton.testing import do_bench

    kind, d, dt = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[dt]
    fn = {"chunk": chunk_linear_attn, "fused_chunk": fused_chunk_linear_attn}[kind]
    B, L, H, DV = 4, 8192, 16, 64
    g = torch.Generator(device="cuda").manual_seed(0)
    q, k = ((torch.nn.functional.elu(torch.randn(B, L, H, d, device="cuda", generator=g)) + 1).to(dtype) for _ in "qk")
    v = torch.randn(B, L, H, DV, device="cuda", generator=g).to(dtype)
    do = torch.randn_like(v)
    q, k, v = (t.requires_grad_() for t in (q, k, v))

    def fb():
        torch.autograd.grad(fn(q, k, v, scale=1.0, normalize=True)[0], (q, k, v), do)

    fb()
    torch.cuda.synchronize()
    with torch.autograd.set_multithreading_enabled(False):
        ms = do_bench(fb, warmup=15, rep=60, return_mode="median")
    print("ROW " + json.dumps(dict(kind=kind, D=d, dtype=dt, L=L, fwdbwd_caller_ms=ms)), flush=True)
else:
    for kind, d, dt in CASES:
        try:
            r = subprocess.run(
                [sys.executable, __file__, kind, str(d), dt], capture_output=True, text=True, timeout=150
            )
            rows = [line for line in r.stdout.splitlines() if line.startswith("ROW ")]
            err = "" if rows else (r.stderr.strip().splitlines() or ["?"])[-1][:200]
            print(f"{kind:12s} D={d:3d} {dt}: " + (rows[0][4:] if rows else f"exit {r.returncode}: {err}"), flush=True)
        except subprocess.TimeoutExpired:
            print(f"{kind:12s} D={d:3d} {dt}: ran past 150 s", flush=True)
