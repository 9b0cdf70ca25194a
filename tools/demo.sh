#!/usr/bin/env bash
# make demo: two logship daemons on loopback (node-a active, node-b passive, TLS 1.3 with mutual
# certificate authentication), a workload written through the public API into node-a's database,
# the copy catching up live, then the copy's data compared with the active's, record for record,
# with LMDB's own mdb_dump. Both daemons are stopped by pid at the end, whatever happens.
# Usage: tools/demo.sh BIN_DIR [DEMO_DIR]   (DEMO_DIR is kept for inspection when given)
set -euo pipefail
bin=$(cd "${1:?usage: demo.sh BIN_DIR [DEMO_DIR]}" && pwd)
keep=${2:-}
if [ -n "$keep" ]; then
  mkdir -p "$keep"
  dir=$(cd "$keep" && pwd)
  rm -rf "$dir/node-a" "$dir/node-b" "$dir/certs" "$dir"/*.conf "$dir"/*.log
else
  dir=$(mktemp -d /tmp/logship-demo-XXXXXX)
fi
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  [ -z "$keep" ] && rm -rf "$dir"
  return 0
}
trap cleanup EXIT

port=$((20000 + RANDOM % 20000))
"$bin/logship" certs "$dir/certs" --ca --node node-a --node node-b >/dev/null
for n in a b; do
  cat > "$dir/node-$n.conf" <<CONF
[node]
name = node-$n
data_dir = $dir/node-$n
control_socket = $dir/node-$n.sock
[tls]
ca = $dir/certs/ca.pem
cert = $dir/certs/node-$n.pem
key = $dir/certs/node-$n.key
CONF
done
cat >> "$dir/node-a.conf" <<CONF
[target node-b]
network = loopback 127.0.0.1:$port
[database db1]
role = active
targets = node-b
CONF
cat >> "$dir/node-b.conf" <<CONF
[listen]
address = 127.0.0.1:$port
[database db1]
role = passive
source = node-a
CONF

echo "== starting node-b (passive) and node-a (active) on 127.0.0.1:$port, TLS 1.3"
"$bin/logshipd" -c "$dir/node-b.conf" 2>"$dir/node-b.log" & pids+=($!)
"$bin/logshipd" -c "$dir/node-a.conf" 2>"$dir/node-a.log" & pids+=($!)

echo "== writing a workload into node-a's database db1 (logship load)"
"$bin/logship" load "$dir/node-a/db1" --transactions 3000 --records-per-txn 50 --value-size 400 \
  --threads 8 --seed 42 | sed 's/^/   /' &
load=$!

# One status line a second: the copy catching up.
field() { sed -n "s/.*\"$1\":[[:space:]]*\([0-9.]*\).*/\1/p" | head -1; }
progress() {
  local j; j=$("$bin/logship" status --json -c "$dir/node-a.conf" 2>/dev/null | tr -d '\n') || return 1
  gen=$(echo "$j" | field last_generated); cop=$(echo "$j" | field last_copied)
  ins=$(echo "$j" | field last_inspected); rep=$(echo "$j" | field last_replayed)
  local line
  line=$(printf 'generated %-4s copied %-4s inspected %-4s replayed %-4s' "$gen" "$cop" "$ins" "$rep")
  if [ -t 1 ]; then printf '\r   %s' "$line"          # a live line on a terminal
  elif [ "$line" != "${last:-}" ]; then echo "   $line"; fi  # plain lines otherwise
  last=$line
}
while kill -0 $load 2>/dev/null; do progress || true; sleep 1; done
wait $load
# The workload is closed: its last generation was rolled on close. Wait for the copy to replay it.
for _ in $(seq 1 120); do
  progress || true
  [ -n "${gen:-}" ] && [ "$gen" -ge 50 ] && [ "$rep" = "$gen" ] && break
  sleep 0.5
done
[ -t 1 ] && echo
[ "${rep:-0}" = "${gen:-x}" ] || { echo "verdict: FAILED, the copy did not catch up (see $dir/*.log)"; exit 1; }
echo
"$bin/logship" status -c "$dir/node-a.conf" | sed 's/^/   /'
"$bin/logship" status -c "$dir/node-b.conf" | sed 's/^/   /'

echo
echo "== stopping both daemons (SIGTERM), then comparing the stores with mdb_dump"
for p in "${pids[@]}"; do kill -TERM "$p"; done
for p in "${pids[@]}"; do wait "$p" || { echo "verdict: FAILED, a daemon did not stop cleanly"; exit 1; }; done
pids=()
# The header's mapsize= line is the environment's current map size, which each side grows on its
# own (LMDB: MDB_MAP_FULL, then a larger map); the data is everything else.
mdb_dump -s data "$dir/node-a/db1/store" | grep -v '^mapsize=' > "$dir/active.dump"
mdb_dump -s data "$dir/node-b/db1/store" | grep -v '^mapsize=' > "$dir/copy.dump"
records=$(( $(grep -c '^ ' "$dir/active.dump") / 2 )) # a key line and a value line each
if cmp -s "$dir/active.dump" "$dir/copy.dump"; then
  echo "verdict: ok: the copy on node-b equals the active on node-a ($records records, $gen generations)"
else
  echo "verdict: FAILED: the copy differs from the active (see $dir)"
  keep=$dir
  exit 1
fi
[ -n "$keep" ] && echo "kept in $dir (layout: $dir/<node>/<database>/{logs,store,...})"
exit 0
