"""Offline sm_90 compile of ``_la_bwd_kernel`` (chunk mode, bf16 inputs and products, d′=16, dv=64, the H200's chunk
sizes) from a source tree, no GPU needed: registers, local/stack bytes (spills), shared memory, SASS instructions,
tensor-core MMAs, MUFU.EX2 (exp) and a digest of the instruction text per kernel specialization.

    python3 offline_sm90_bwd.py TREE [one]

TREE: a checkout (``git archive REV | tar -x -C TREE``); ``one``: also the one-launch kernel (trees with
``BWD_ONE_LAUNCH``). With ``MIXERZOO_LA_BWD_TILE_PASS=1`` in the environment the feature maps' halves compile with the
one-pass tiles (trees with ``BWD_TILE_PASS``). Run with ``TRITON_INTERPRET=0``.
"""

import hashlib
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, sys.argv[1])
import triton  # noqa: E402
from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.compiler import ASTSource  # noqa: E402

from mixerzoo.feature_maps import feature_map  # noqa: E402
from mixerzoo.kernels.linear_attention import triton_kernels as K  # noqa: E402
from mixerzoo.kernels.linear_attention import triton_ops as T  # noqa: E402

BIN = os.path.join(os.path.dirname(triton.__file__), "backends/nvidia/bin")


def tool(name: str, path: str, flag: str) -> str:
    return subprocess.run([f"{BIN}/{name}", flag, path], capture_output=True, text=True).stdout


def compile_sm90(fn, sig: dict, consts: dict, warps: int) -> str:
    attrs = {(i,): [["tt.divisibility", 16]] for i, t in enumerate(sig.values()) if t.startswith("*")}
    src = ASTSource(fn=fn, signature={**sig, **{c: "constexpr" for c in consts}}, constexprs=consts, attrs=attrs)
    kernel = triton.compile(src, target=GPUTarget("cuda", 90, 32), options=dict(num_warps=warps, num_stages=1))
    with tempfile.NamedTemporaryFile("wb", suffix=".cubin", delete=False) as f:
        f.write(kernel.asm["cubin"])
    sass = tool("cuobjdump", f.name, "-sass")
    res = tool("cuobjdump", f.name, "-res-usage")
    n = len(re.findall(r"^\s+/\*[0-9a-f]{4,}\*/", sass, re.M))  # instruction offsets
    mma = len(re.findall(r"HGMMA|HMMA", sass))
    ex2 = len(re.findall(r"MUFU\.EX2", sass))
    regs, local, stack = (re.search(rf"{key}:(\d+)", res).group(1) for key in ("REG", "LOCAL", "STACK"))
    # a digest of the instruction text (addresses stripped): equal digests, identical machine code
    body = "\n".join(line.split("*/", 1)[-1] for line in sass.splitlines() if re.match(r"^\s+/\*[0-9a-f]{4,}\*/", line))
    digest = hashlib.sha1(body.encode()).hexdigest()[:12]
    return (
        f"regs {regs:>3} local/stack {local}/{stack} B smem {kernel.metadata.shared // 1024:>3} KB  "
        f"sass {n:>6}  mma {mma:>4}  ex2 {ex2:>4}  sha1 {digest}"
    )


bf, f32 = "*bf16", "*fp32"
SIG = dict(
    q=bf, k=bf, v=bf, w=f32, do=bf, den=f32, dden=f32, s_all=bf, z_all=f32, ds_all=f32, dz_all=f32, dq=bf, dk=bf,
    dv=bf, L="i32", H="i32", NC="i32", stride_sbh="i64", stride_sc="i64", stride_dsbh="i64", stride_dsc="i64",
    offset="i32", SC1="fp32", SC2="fp32", ANG="fp32", MS="fp32", SQ="fp32",
)  # fmt: skip
one = len(sys.argv) > 2 and sys.argv[2] == "one"
for name, opts in (("taylor", {}), ("performer", {"m": 64}), ("poselu", {}), ("cosformer", {"max_len": 32768})):
    plan, _ = T._plan_of(feature_map(name, 16, **opts))
    bt = T._chunk_size(plan, 16384, 64)
    st = T._statics(plan, 64, bt, "bf16")
    for half in ("dq", "dkdv") + (("one launch",) if one else ()):
        consts = dict(st, BV=64, SCORE=name == "taylor", PARALLEL=False, HAS_S=True, HAS_DS=True, NORMALIZE=True,
                      DOT16=True, DO_Q=half == "dq", DO_KV=half == "dkdv")  # fmt: skip
        if "TILE_PASS" in K._la_bwd_kernel.arg_names:
            consts["TILE_PASS"] = T.BWD_TILE_PASS and name != "taylor"
        if "ONE_GRID" in K._la_bwd_kernel.arg_names:
            consts["ONE_GRID"] = half == "one launch"
        print(
            f"{name:10s} BT={bt:3d} {half:10s} {compile_sm90(K._la_bwd_kernel, SIG, consts, T._warps(bt))}", flush=True
        )
