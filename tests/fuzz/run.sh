#!/usr/bin/env bash
# Runs every libFuzzer target built in BUILD/bin (*_fuzz) for SECONDS each, on a fresh copy of its
# seed corpus tests/fuzz/corpus/<name without _fuzz>/ (so the checked-in corpus is never
# polluted), with the dictionary tests/fuzz/<name without _fuzz>.dict when there is one, and
# prints one line per target. Work copies and crash artifacts stay under
# BUILD/fuzz/<name>/ for inspection; reproduce a crash with: BUILD/bin/<name> <artifact>.
# Exit status: 0 when every target ran clean, 1 when any found a crash, leak, timeout or OOM (or
# could not run), 2 on bad usage.
# Usage: tests/fuzz/run.sh BUILD_DIR [SECONDS]   (make fuzz FUZZ_SECONDS=N calls it)
set -uo pipefail

build=${1:-}
secs=${2:-30}
if [ -z "$build" ] || ! [[ "$secs" =~ ^[0-9]+$ ]]; then
  echo "usage: $0 BUILD_DIR [SECONDS]" >&2
  exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "$build" && pwd) || exit 2

# Largest input each target is fed, bytes: big enough for its real inputs to be reachable, small
# enough that the fuzzer spends its time on structure rather than on size.
max_len_for() {
  case "$1" in
    frame_decode) echo 32768 ;; # a HELLO naming 256 databases is ~21 KiB; data chunks are opaque
    gen_scan) echo 65536 ;;     # many records, trailer; a full 1 MiB generation adds nothing
    gen_stream) echo 65536 ;;   # the same inputs, plus one byte choosing how they are cut
    config) echo 8192 ;;        # a configuration of a few peers and databases is ~1-2 KiB
    control) echo 65536 ;;      # one request line, at most LS_CONTROL_REQ_MAX (64 KiB)
    role) echo 4096 ;;          # the role file: six short lines
    announced) echo 4096 ;;     # five fixed-width lines and a comment
    opstate) echo 4096 ;;       # a small JSON object (a comment up to its field size)
    counters) echo 4096 ;;      # a small JSON object; the loader reads at most 4096 bytes
    history) echo 8192 ;;       # one short line per epoch
    *) echo 65536 ;;
  esac
}

shopt -s nullglob
targets=("$build"/bin/*_fuzz)
if [ ${#targets[@]} -eq 0 ]; then
  echo "fuzz: no *_fuzz programs in $build/bin (configure with CC=clang -DLS_FUZZ=ON)" >&2
  exit 1
fi

export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
failed=0
for exe in "${targets[@]}"; do
  prog=$(basename "$exe")
  name=${prog%_fuzz}
  work="$build/fuzz/$prog"
  rm -rf "$work"
  mkdir -p "$work/corpus" "$work/artifacts"
  seeds="$here/corpus/$name"
  if [ -d "$seeds" ]; then
    cp -R "$seeds/." "$work/corpus/"
  else
    echo "fuzz: note: no seed corpus $seeds for $prog, starting empty" >&2
  fi
  nseeds=$(find "$work/corpus" -type f | wc -l)
  # A dictionary of the input's words (keys, section names) where the parser's own comparisons
  # are not instrumented (cJSON, libinih are system libraries): tests/fuzz/<name>.dict.
  dict=()
  [ -f "$here/$name.dict" ] && dict=(-dict="$here/$name.dict")
  # In a subshell so that the shell's own "Aborted" note on a crash goes to the log too.
  ("$exe" "$work/corpus" -max_total_time="$secs" -max_len="$(max_len_for "$name")" \
    "${dict[@]}" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$work/artifacts/"; exit $?) >"$work/log" 2>&1
  rc=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log" | tail -1)
  ncorpus=$(find "$work/corpus" -type f | wc -l)
  artifact=$(find "$work/artifacts" -type f | head -1)
  if [ $rc -eq 0 ] && [ -z "$artifact" ]; then
    printf '%-18s ok     %s runs in %ss, corpus %s -> %s\n' "$prog" "${runs:-?}" "$secs" \
      "$nseeds" "$ncorpus"
  else
    failed=1
    printf '%-18s FAILED exit %s, artifact %s, log %s\n' "$prog" "$rc" "${artifact:-none}" \
      "$work/log"
    grep -m1 -E '^(==[0-9]+==ERROR|SUMMARY|.*runtime error)' "$work/log" | sed 's/^/                 /'
  fi
done
exit $failed
