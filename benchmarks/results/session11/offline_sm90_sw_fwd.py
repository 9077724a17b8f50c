"""Offline sm_90 compile of ``sliding_window_fwd_kernel`` (bf16, B=4-style strides, W=128, the aligned path) from a
source tree, no GPU needed: registers, spills, shared memory, SASS instruction count, HGMMA, MUFU.EX2, FMUL/FFMA and
BAR per variant (num_stages, maxnreg, flags). The counts of the removed variants (LAZY, UNROLL, ONE_LOOP, MERGE) were
printed by earlier versions of this script, at the commits listed in ``README.md``.

    TRITON_INTERPRET=0 python3 offline_sm90_sw_fwd.py TREE
"""

import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, sys.argv[1])
import triton  # noqa: E402
from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.compiler import ASTSource  # noqa: E402

from mixerzoo.kernels.sliding_window import triton_ops as T  # noqa: E402

DEFAULTS = dict(FOLD=True, GEN_STAGES=1)
BIN = os.path.join(os.path.dirname(triton.__file__), "backends/nvidia/bin")
SIG = dict(p_q="*bf16", p_k="*bf16", p_v="*bf16", p_o="*bf16", p_lse="*fp32", Lq="i32", Lk="i32", W="i32",
           scale_log2="fp32", s_qb="i32", s_ql="i32", s_qh="i32", s_kb="i32", s_kl="i32", s_kh="i32", s_vb="i32",
           s_vl="i32", s_vh="i32")  # fmt: skip


def tool(name: str, path: str, flag: str) -> str:
    return subprocess.run([f"{BIN}/{name}", flag, path], capture_output=True, text=True).stdout


def compile_one(d: int, W: int, warps: int, stages: int, maxnreg=None, **flags) -> str:
    BM, BN = 64, 32
    consts = dict(H=16, HKV=16, D=d, DV=d, BD=d, BDV=d, BM=BM, BN=BN, NB=T.cdiv(BM + W - 1, BN),
                  NL=T.cdiv(W - 1, BN), NU=max(0, (W - BM) // BN), DIAG_MASK=2, PREC="tf32", **{**DEFAULTS, **flags})  # fmt: skip
    names = list(SIG)
    attrs = {
        (i,): [["tt.divisibility", 16]] for i, n in enumerate(names) if SIG[n].startswith("*") or n.startswith("s_")
    }
    sig = {**SIG, **{c: "constexpr" for c in consts}}
    src = ASTSource(fn=T.sliding_window_fwd_kernel, signature=sig, constexprs=consts, attrs=attrs)
    opts = dict(num_warps=warps, num_stages=stages)
    if maxnreg:
        opts["maxnreg"] = maxnreg
    k = triton.compile(src, target=GPUTarget("cuda", 90, 32), options=opts)
    with tempfile.NamedTemporaryFile("wb", suffix=".cubin", delete=False) as f:
        f.write(k.asm["cubin"])
    sass, res = tool("cuobjdump", f.name, "-sass"), tool("cuobjdump", f.name, "-res-usage")
    n = len(re.findall(r"^\s+/\*[0-9a-f]{4,}\*/", sass, re.M))
    cnt = {
        op: len(re.findall(op, sass)) for op in ("HGMMA", "HMMA", r"MUFU\.EX2", "FMUL", "FFMA", "BAR", "SHFL", "FSEL")
    }
    regs, local = (re.search(rf"{key}:(\d+)", res).group(1) for key in ("REG", "LOCAL"))
    return f"regs {regs:>3} local {local:>3} smem {k.metadata.shared // 1024:>3} KB sass {n:>5} " + " ".join(
        f"{op.replace(chr(92), '')} {c}" for op, c in cnt.items()
    )


VARIANTS = [  # the final defaults (d=64: 80 registers, 3 stages; d=128: 128 registers, 2 stages) and uncapped
    (64, 4, 3, 80, {}),
    (64, 4, 3, None, {}),
    (128, 4, 2, 128, {}),
    (128, 4, 2, None, {}),
]
for d, warps, stages, maxnreg, flags in VARIANTS:
    try:
        print(f"d={d:3d} W=128 w{warps} s{stages} r{maxnreg} {flags}", compile_one(d, 128, warps, stages, maxnreg, **flags),
              flush=True)  # fmt: skip
    except Exception as e:  # noqa: BLE001
        print(f"d={d} {flags}: {type(e).__name__}: {str(e)[-400:]}", flush=True)
