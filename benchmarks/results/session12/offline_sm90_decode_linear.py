"""Offline sm_90 compile of ``decode_linear_kernel`` (no GPU needed): registers, spills and SASS counts at
Based-360M / 1.3B shapes, with and without PDL. Session 12 ran it instead of the GPU tests it had no device time
for: it shows the kernel compiles for the H200 with ``griddepcontrol.wait`` where the first chunk's loads are.

    TRITON_INTERPRET=0 python3 benchmarks/results/session12/offline_sm90_decode_linear.py TREE
"""

import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, sys.argv[1] if len(sys.argv) > 1 else ".")
import triton  # noqa: E402
from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.compiler import ASTSource  # noqa: E402

from mixerzoo.kernels.decode_linear import triton_ops as T  # noqa: E402

BIN = os.path.join(os.path.dirname(triton.__file__), "backends/nvidia/bin")


def tool(name: str, path: str, flag: str) -> str:
    return subprocess.run([f"{BIN}/{name}", flag, path], capture_output=True, text=True).stdout


def compile_one(K: int, dtype: str, bias: bool, pdl: int) -> str:
    elem = {"bf16": 2, "fp16": 2, "fp32": 4}[dtype]
    BK = min(triton.next_power_of_2(K), T.CHUNK_BYTES // elem)
    consts = dict(BN=4, BK=BK, NK=triton.cdiv(K, BK), HAS_BIAS=bias, PDL=pdl)
    sig = {"p_x": f"*{dtype}", "p_w": f"*{dtype}", "p_b": f"*{dtype}", "p_y": f"*{dtype}", "N": "i32", "K": "i32",
           **{c: "constexpr" for c in consts}}  # fmt: skip
    attrs = {(i,): [["tt.divisibility", 16]] for i in range(4)}
    src = ASTSource(fn=T.decode_linear_kernel, signature=sig, constexprs=consts, attrs=attrs)
    k = triton.compile(src, target=GPUTarget("cuda", 90, 32), options=dict(num_warps=4))
    with tempfile.NamedTemporaryFile("wb", suffix=".cubin", delete=False) as f:
        f.write(k.asm["cubin"])
    sass, res = tool("cuobjdump", f.name, "-sass"), tool("cuobjdump", f.name, "-res-usage")
    regs, local = (re.search(rf"{key}:(\d+)", res).group(1) for key in ("REG", "LOCAL"))
    n_sass = len(re.findall(r"^\s+/\*[0-9a-f]{4,}\*/", sass, re.M))
    acq = "griddepcontrol.wait" in k.asm["ptx"]
    first_wait = k.asm["ptx"].find("griddepcontrol.wait")
    loads_before = k.asm["ptx"][: max(first_wait, 0)].count("ld.global")
    return (f"K={K:5d} {dtype} bias={bias:d} PDL={pdl}: BK={BK} NK={consts['NK']} regs {regs:>3} local {local:>3} "
            f"sass {n_sass:>4} wait {acq} "
            f"global loads before the wait {loads_before}")  # fmt: skip


for K, dtype, bias in [(1024, "bf16", True), (1024, "bf16", False), (2752, "bf16", False), (4800, "bf16", False),
                       (1024, "fp32", False), (2752, "fp16", True)]:  # fmt: skip
    for pdl in (0, 1):
        print(compile_one(K, dtype, bias, pdl), flush=True)
