# NOT RUN in session 13 (its device time was spent): the next session's first call. What makes the compiled step
# slower after an eager graphed run (notes/generation.md, "Session 13"): each line one process, ~30 s.
# bash benchmarks/results/session13/call9.sh
export PYTHONPATH=$PWD
F="Warning\|warn\|originates\|^ *File\|^ *return\|^$\|torch._dynamo"
# o ORDER [VAR=VALUE ...]: order.py's ORDER in one process, with those environment variables
o() { order=$1; shift; echo "== $order $*"; env "$@" timeout 80 python3 benchmarks/results/session13/order.py based-360m "$order" 2>&1 | grep -v "$F" | grep '"compiled"'; }
o c
o ec
o ec MIXERZOO_STEP_PDL=0
o xc
o Nc
o Fc
o ef
