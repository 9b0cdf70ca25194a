#!/usr/bin/env bash
# make demo: writes a workload through the public API into an active database directory, shows
# the generations it produced, and verifies each one with `logship dump`.
# Usage: tools/demo.sh BIN_DIR [DEMO_DIR]   (DEMO_DIR kept for inspection when given)
#
# The paired daemons (active and passive on loopback, the copy catching up, the copy verified
# against the active) arrive with logshipd; until then this demo covers the writer side only.
set -euo pipefail
bin=${1:?usage: demo.sh BIN_DIR [DEMO_DIR]}
keep=${2:-}
if [ -n "$keep" ]; then
  dir=$keep
  rm -rf "$dir/node-a"
  mkdir -p "$dir"
else
  dir=$(mktemp -d /tmp/logship-demo-XXXXXX)
  trap 'rm -rf "$dir"' EXIT
fi
db=$dir/node-a/db1

echo "== logship demo: writing a workload into $db"
"$bin/logship" load "$db" --transactions 6000 --records-per-txn 10 --value-size 900 --threads 4 --seed 42

gens=("$db"/logs/E00-*.log)
echo
echo "== ${#gens[@]} closed generations in $db/logs:"
ls -l "$db/logs" | head -5
echo "   ..."
echo
echo "== the first generation, as 'logship dump' sees it:"
"$bin/logship" dump "${gens[0]}"
echo
echo "== verifying every generation (records, trailer, digest, chain)"
bad=0
for g in "${gens[@]}"; do
  "$bin/logship" dump "$g" >/dev/null || { echo "BAD: $g"; bad=$((bad+1)); }
done
if [ "$bad" -ne 0 ]; then
  echo "verdict: $bad damaged generation(s)"; exit 1
fi
echo "verdict: all ${#gens[@]} generations ok"
[ -n "$keep" ] && echo "kept in $dir"
echo "note: shipping to a passive daemon (logshipd) is not built yet; this demo shows the writer side."
