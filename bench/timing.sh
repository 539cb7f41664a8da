# Shared by the shell benchmarks (sourced): interleaved timing and medians.
# run_rounds ROUNDS: runs each function named in methods[] once per round, in
# turn, so machine noise falls on every method alike; wall seconds collect in
# times[NAME], CPU seconds (user + system of the method and every process it
# waited for) in cpus[NAME]. On a shared, loaded machine wall time also counts
# waiting for a core; CPU time is the steadier figure.
declare -A times cpus
seconds() { local t0=$EPOCHREALTIME; "$@" >/dev/null; awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN {print b - a}'; }
# "WALL CPU" seconds of one run of "$@"; its stdout is dropped, its stderr kept.
wall_and_cpu() {
  local TIMEFORMAT='%R %U %S'
  { time "$@" >/dev/null 2>&3; } 3>&2 2>&1 | awk '{print $1, $2 + $3}'
}
run_rounds() {
  local r m w c
  for ((r = 0; r < $1; r++)); do
    for m in "${methods[@]}"; do
      read -r w c < <(wall_and_cpu "$m")
      times[$m]+="$w "
      cpus[$m]+="$c "
    done
  done
}
# The median of whitespace-separated numbers on stdin.
median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
