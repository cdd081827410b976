#!/bin/bash
# Start-up load with validation on (drop-in mode) of a corpus, for one or more checkouts' src/
# directories, alternating, ROUNDS times each; prints wall/CPU and /proc/loadavg before and after
# each run.
#   bench/startup_bench.sh CORPUS_DIR ROUNDS SRC_DIR [SRC_DIR...]
#       `serve --dry-run`, no package cache (every start parses everything): wall/user/sys
#   bench/startup_bench.sh --serve CORPUS_DIR ROUNDS SRC_DIR [SRC_DIR...]
#       a real `serve --cache-dir D` per SRC_DIR (its own empty D): a first start, then ROUNDS
#       restarts over the unchanged folders; time from exec to the first /health 200 and the
#       server's CPU (user+sys of its process tree, children included, from /proc) at that moment
# e.g. python bench/make_corpus.py /tmp/prod --production
#      git archive e9e4e29 src | tar -x -C /tmp/base9
#      bench/startup_bench.sh /tmp/prod 2 "$PWD/src" /tmp/base9/src
#      bench/startup_bench.sh --serve /tmp/prod 3 "$PWD/src" /tmp/base9/src
set -eu
serve=0
if [ "${1:-}" = "--serve" ]; then serve=1; shift; fi
corpus=$1 rounds=$2
shift 2
here=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
printf 'package_paths:\n  - %s\n' "$corpus" > "$work/config.yml"
python=$here/.venv/bin/python
main="import sys; from package_storage.cli.main import main; sys.exit(main())"

if [ "$serve" = 0 ]; then
  for round in $(seq "$rounds"); do
    for src in "$@"; do
      before=$(cat /proc/loadavg)
      PYTHONPATH=$src /usr/bin/time -o "$work/time" -f "%e s wall, %U s user, %S s sys" \
        "$python" -c "$main" \
        serve --config "$work/config.yml" --dry-run --require-package-signatures=false > "$work/log" 2>&1 \
        || { echo "$src: failed"; tail -c 500 "$work/log"; exit 1; }
      echo "round $round $src: $(cat "$work/time") | loadavg before: $before | after: $(cat /proc/loadavg) | $(grep -o '[0-9]* local package manifests loaded' "$work/log")"
    done
  done
  exit 0
fi

# CPU seconds (user+sys, children waited for included) of a process and its live descendants.
tree_cpu() {
  local pids=$1 all="" next
  while [ -n "$pids" ]; do
    all="$all $pids"
    next=""
    for p in $pids; do next="$next $(cat /proc/"$p"/task/*/children 2>/dev/null || true)"; done
    pids=$(echo $next)
  done
  local ticks=0
  for p in $all; do
    # fields after the ")" of comm: utime stime cutime cstime are 12-15
    set -- $(sed 's/.*) //' /proc/"$p"/stat 2>/dev/null || echo "x x x x x x x x x x x 0 0 0 0")
    ticks=$((ticks + ${12} + ${13} + ${14} + ${15}))
  done
  echo "scale=2; $ticks / $(getconf CLK_TCK)" | bc
}

port=$((20000 + RANDOM % 20000))
one_start() {  # SRC CACHE LABEL
  local src=$1 cache=$2 label=$3 before t0 pid code t1
  before=$(cat /proc/loadavg)
  t0=$(date +%s.%N)
  PYTHONPATH=$src EPR_LOG_LEVEL=warn "$python" -c "$main" serve --config "$work/config.yml" \
    --require-package-signatures=false --cache-dir "$cache" --address "127.0.0.1:$port" \
    > "$work/log" 2>&1 &
  pid=$!
  code=0
  for _ in $(seq 60000); do  # 10 min at most
    code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/health" || true)
    [ "$code" = 200 ] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.01
  done
  t1=$(date +%s.%N)
  local cpu
  cpu=$(tree_cpu "$pid")
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  [ "$code" = 200 ] || { echo "$src: not ready"; tail -c 800 "$work/log"; exit 1; }
  printf '%s %s: ready (/health 200) %.2f s wall, %s s CPU | loadavg before: %s | after: %s\n' \
    "$label" "$src" "$(echo "$t1 - $t0" | bc)" "$cpu" "$before" "$(cat /proc/loadavg)"
}

n=0
for src in "$@"; do
  n=$((n + 1))
  rm -rf "$work/cache$n"
  one_start "$src" "$work/cache$n" "first start"
done
for round in $(seq "$rounds"); do
  n=0
  for src in "$@"; do
    n=$((n + 1))
    one_start "$src" "$work/cache$n" "restart $round"
  done
done
