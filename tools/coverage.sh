#!/usr/bin/env bash
# tools/coverage.sh BUILD_DIR: line coverage per engine module from the gcov data of a
# -DLS_COVERAGE=ON build whose tests have run (make coverage does both). Lists every folder under
# engine/ and proto/, also one that has no data yet (not linked into any test, or no sources).
# Writes BUILD_DIR/coverage.json (gcovr's per-line data) and BUILD_DIR/coverage/index.html.
# Headers are compiled through the per-module include roots (BUILD_DIR/modinc/, symlinks; see
# CMakeLists.txt): their lines are counted under the folder the link points to.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-coverage}
command -v gcovr >/dev/null || { echo "coverage: gcovr not found (tools/deps.sh coverage)" >&2; exit 1; }
mkdir -p "$build/coverage"
# --gcov-ignore-parse-errors: a branch count gcov cannot print is no reason to lose the line
# report (and gcovr 5.2 with -j hangs after such an error).
gcovr -r . --filter 'engine/' --filter 'proto/' -j 2 --gcov-ignore-parse-errors --json "$build/coverage.json" \
    --html-details "$build/coverage/index.html" "$build" >/dev/null
python3 - "$build/coverage.json" engine/*/ proto/ <<'PY'
import json, os, sys
lines = {}   # real path -> {line number: executed}
for f in json.load(open(sys.argv[1]))["files"]:
    path = os.path.relpath(os.path.realpath(f["file"]))
    seen = lines.setdefault(path, {})
    for l in f["lines"]:
        if not l["gcovr/noncode"] and not l["gcovr/excluded"]:
            seen[l["line_number"]] = seen.get(l["line_number"], False) or l["count"] > 0
mods = {d.rstrip("/"): [0, 0, 0] for d in sys.argv[2:]}
for path, seen in lines.items():
    m = mods.setdefault(os.path.dirname(path), [0, 0, 0])
    m[0] += sum(seen.values()); m[1] += len(seen); m[2] += 1
print("line coverage per module (%s)" % sys.argv[1])
tc = tt = 0
for d in sorted(mods):
    c, t, n = mods[d]
    tc += c; tt += t
    srcs = [x for x in os.listdir(d) if x.endswith(".c")] if os.path.isdir(d) else []
    if t:
        print("  %-20s %6.1f%%  %6d / %-6d lines  %d files" % (d + "/", 100.0 * c / t, c, t, n))
    elif srcs:
        print("  %-20s   no data: %d source file%s not built or not linked into a test"
              % (d + "/", len(srcs), "" if len(srcs) == 1 else "s"))
    else:
        print("  %-20s   no sources" % (d + "/"))
if tt:
    print("  %-20s %6.1f%%  %6d / %-6d lines" % ("total", 100.0 * tc / tt, tc, tt))
PY
echo "per file: $build/coverage/index.html"
