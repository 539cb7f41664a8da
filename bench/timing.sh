# Shared by the shell benchmarks (sourced): interleaved timing and medians.
# run_rounds ROUNDS: runs each function named in methods[] once per round, in
# turn, so machine noise falls on every method alike; seconds collect in times[NAME].
declare -A times
seconds() { local t0=$EPOCHREALTIME; "$@" >/dev/null; awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN {print b - a}'; }
run_rounds() {
  local r m
  for ((r = 0; r < $1; r++)); do
    for m in "${methods[@]}"; do times[$m]+="$(seconds "$m") "; done
  done
}
# The median of whitespace-separated numbers on stdin.
median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
