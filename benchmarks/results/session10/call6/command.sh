#!/bin/bash
# Session 10, call 6 (run inline from `.snap` at 87453fa): the forward tile sweep at the four K=3 shapes.
cd .snap && export PYTHONUNBUFFERED=1 TRITON_INTERPRET=0 && PYTHONPATH=$PWD timeout 300 python3 -c "
import sys, json; sys.argv=['x']; sys.path.insert(0,'benchmarks')
import short_conv as S
from _common import copy_bandwidth
bw = copy_bandwidth(); meta = {}
S.sweep(meta, bw, [(4,16384,4096,3),(4,16384,1024,3),(4,4096,4096,3),(4,4096,1024,3)], {})
" 2>&1 | grep -v -i warn | python3 -c "
import sys, json
for line in sys.stdin:
    if line.startswith('{'):
        r = json.loads(line); c = r['cfg']
        print(r['B'], r['L'], r['C'], r['K'], (c['BT'], c['BC'], c['NT'], c['num_warps']), round(r.get('ms', -1), 4), round(r.get('frac_copy_bw', -1), 3), r.get('error', ''))
    else:
        print(line.rstrip())
" | tee $OUT/sweep_k3.log
