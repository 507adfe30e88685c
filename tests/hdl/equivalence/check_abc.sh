#!/bin/bash
# Prove two Verilog designs sequentially equivalent with ABC's dprove (see README.md).
# usage: check_abc.sh GOLD.v GATE.v TOP [NAME]
#   GOLD.v, GATE.v: the old and the new design; TOP: the top module's name in both;
#   NAME: prefix of the files written (NAME.aig, NAME.yosys.log; default: TOP).
# Needs a native Yosys with its ABC binary (Debian: `apt-get install yosys` gives
# /usr/bin/yosys and /usr/bin/yosys-abc); YOSYS= and YOSYS_ABC= override them.
#
# Unlike check.sh, no signal is paired by name: both designs are flattened, their
# outputs compared by a miter (`miter -equiv`: one output, `trigger`, high when any
# output differs), the miter is bit-blasted to an AIG with every register starting from
# its `init` value (`write_aiger -zinit`), and ABC's `dprove` proves `trigger` never
# rises from reset (register correspondence, induction, then interpolation). No Yosys
# optimisation runs on the miter (ABC does its own), so nothing is simplified before the
# proof. Exit status 0 and "Networks are equivalent." when proven; 1 with the frame of a
# counterexample ("Output 0 of miter ... was asserted in frame N") when not.
set -euo pipefail
gold=$1; gate=$2; top=$3; name=${4:-$3}
yosys=${YOSYS:-yosys}; abc=${YOSYS_ABC:-yosys-abc}
prepare="hierarchy -top $top; proc; flatten; memory -nomap; memory_map; opt_clean"
"$yosys" -q -l "$name.yosys.log" -p "
read_verilog -sv $gold; $prepare; rename -top gold; design -stash gold;
read_verilog -sv $gate; $prepare; rename -top gate; design -stash gate;
design -copy-from gold -as gold gold; design -copy-from gate -as gate gate;
miter -equiv -flatten gold gate miter; hierarchy -top miter;
techmap; dffunmap; async2sync; setundef -zero -undriven; aigmap; opt_clean -purge;
write_aiger -zinit $name.aig"
result=$("$abc" -c "read_aiger $name.aig; print_stats; dprove" 2>&1)
echo "$result"
grep -q "Networks are equivalent" <<<"$result"
