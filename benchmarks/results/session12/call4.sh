# Session 12, call 4: the conv benchmark of record and the window decode table with PDL mode 1 (the default).
# bash benchmarks/results/session12/call4.sh
export PYTHONPATH=$PWD
timeout 200 python3 benchmarks/short_conv.py --out $OUT/conv --no-compiled --pin-cpu 5 2>&1 | tail -3
timeout 110 python3 benchmarks/sliding_window.py --out $OUT/sw --decode-only --decode-B 1,16,64,256 --budget-s 60 2>&1 | tail -8
