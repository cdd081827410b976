#!/bin/bash
# Start-up load with validation on (drop-in mode, `serve --dry-run`) of a corpus, for one or more
# checkouts' src/ directories, alternating, ROUNDS times each; prints wall/user/sys and
# /proc/loadavg before and after each run.
#   bench/startup_bench.sh CORPUS_DIR ROUNDS SRC_DIR [SRC_DIR...]
# e.g. python bench/make_corpus.py /tmp/prod --production
#      git archive e9e4e29 src | tar -x -C /tmp/base9
#      bench/startup_bench.sh /tmp/prod 2 "$PWD/src" /tmp/base9/src
set -eu
corpus=$1 rounds=$2
shift 2
here=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
printf 'package_paths:\n  - %s\n' "$corpus" > "$work/config.yml"
for round in $(seq "$rounds"); do
  for src in "$@"; do
    before=$(cat /proc/loadavg)
    PYTHONPATH=$src /usr/bin/time -o "$work/time" -f "%e s wall, %U s user, %S s sys" \
      "$here/.venv/bin/python" -c "import sys; from package_storage.cli.main import main; sys.exit(main())" \
      serve --config "$work/config.yml" --dry-run --require-package-signatures=false > "$work/log" 2>&1 \
      || { echo "$src: failed"; tail -c 500 "$work/log"; exit 1; }
    echo "round $round $src: $(cat "$work/time") | loadavg before: $before | after: $(cat /proc/loadavg) | $(grep -o '[0-9]* local package manifests loaded' "$work/log")"
  done
done
