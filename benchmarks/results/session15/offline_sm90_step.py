"""Offline sm_90 compile of the window/attention decode step kernel (no GPU needed), written in the review after the
device budget was spent: does it compile for the H200 with RoPE in the kernel, and do the early reads go out before
``griddepcontrol.wait``? Counts ``ld.global.cg`` in the PTX before and after the wait, and the atomics.

    TRITON_INTERPRET=0 PYTHONPATH=$PWD python3 benchmarks/results/session15/offline_sm90_step.py

Output at 38b2c44 (the attn layer at batch 1 with 16 splits; then ≥ 528 programs without and with early reads):
    early=True r2=32 S=16: ld.global.cg 146 (before wait: 128), wait at 38328, atom 2
    early=False r2=0 S=1: ld.global.cg 0 (before wait: 0), wait at 3998, atom 0
    early=True r2=0 S=1: ld.global.cg 64 (before wait: 64), wait at 19351, atom 0
"""

import re

import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

from mixerzoo.kernels.sliding_window import triton_ops as T

NAMES = ["p_q", "p_k", "p_v", "p_ck", "p_cv", "p_pos", "pos_int", "p_o", "p_pm", "p_pl", "p_pacc", "p_count", "p_cos",
         "p_sin", "N_ROT", "s_rot", "W", "WS", "scale_log2", "s_qb", "s_qh", "s_kb", "s_kh", "s_vb", "s_vh"]  # fmt: skip
TYPES = ["*bf16"] * 5 + ["*i64", "i32", "*bf16", "*fp32", "*fp32", "*fp32", "*i32", "*fp32", "*fp32"] + ["i32"] * 4
TYPES += ["fp32"] + ["i32"] * 6

for early, r2, S, prefetch, warps in [(True, 32, 16, False, 4), (False, 0, 1, True, 1), (True, 0, 1, True, 1)]:
    consts = dict(H=16, HKV=16, D=64, DV=64, BD=64, BDV=64, BW=128 if S > 1 else 16, NW=1 if S > 1 else 128, S=S,
                  BS=S, POS_TENSOR=True, PREFETCH=prefetch, DENSE=True, DYN=True, EARLY=early, R2=r2, PDL=1)  # fmt: skip
    sig = dict(zip(NAMES, TYPES)) | {c: "constexpr" for c in consts}
    src = ASTSource(fn=T.sliding_window_step_kernel, signature=sig, constexprs=consts)
    ptx = triton.compile(src, target=GPUTarget("cuda", 90, 32), options=dict(num_warps=warps)).asm["ptx"]
    wait = ptx.find("griddepcontrol.wait")
    cg = [m.start() for m in re.finditer(r"ld\.global\.cg", ptx)]
    print(
        f"early={early} r2={r2} S={S}: ld.global.cg {len(cg)} (before wait: {sum(c < wait for c in cg)}), "
        f"wait at {wait}, atom {len(re.findall('atom', ptx))}"
    )
