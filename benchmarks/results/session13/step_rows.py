"""Session 13: the compiled, graphed decode step with ``decode_matmul_kernel`` for batches of 2–128
(``MIXERZOO_DECODE_GEMM=1``), its tiles set from the command line, one configuration per process. A record of call
2: it runs at commit 6ec22e4, where the library had that kernel (removed after call 2 and 3 measured it slower than
cuBLAS; ``decode_gemm_pdl.py`` keeps a copy).

    MIXERZOO_DECODE_GEMM=1 PYTHONPATH=$PWD python3 benchmarks/results/session13/step_rows.py MODEL BATCH [BK STAGES MIN_PROGRAMS]
"""

import json
import sys

from mixerzoo import bench
from mixerzoo.kernels import decode_linear
from mixerzoo.kernels.decode_linear import triton_ops

name, batch = sys.argv[1], int(sys.argv[2])
if len(sys.argv) > 3:
    triton_ops.ROWS_BK, triton_ops.ROWS_STAGES, triton_ops.ROWS_MIN_PROGRAMS = (int(a) for a in sys.argv[3:6])
ceil = bench.Ceilings(4.25e12, 756e12)  # the floors' ceilings as measured in earlier runs (only the ratio column)
row = bench.bench_generate(name, batch, 1024, 129, ceil, compile_step=True)
row.update(decode_gemm=decode_linear.DECODE_GEMM, tiles=[triton_ops.ROWS_BK, triton_ops.ROWS_STAGES,
           triton_ops.ROWS_MIN_PROGRAMS])  # fmt: skip
print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}), flush=True)
