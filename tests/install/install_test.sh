#!/bin/sh
# Installs the build into a temporary prefix (as `make install PREFIX=DIR` does), then checks the
# installed tree: libraries, headers, logship.pc, programs and manual pages; builds
# tests/install/dbdemo.c against it with `pkg-config --cflags --libs logship` (shared, then
# static) and runs it; checks that liblogship.so exports the public API and nothing else.
# Usage: install_test.sh BUILD_DIR SOURCE_DIR [CFLAGS]   (run by ctest; CFLAGS: sanitizer, coverage)
set -eu
build=$1 src=$2 extra=${3:-}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/ls-install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix
fail() { echo "install_test: $*" >&2; exit 1; }

cmake --install "$build" --prefix "$prefix" >"$tmp/install.log" 2>&1 || { cat "$tmp/install.log"; fail "cmake --install failed"; }
pc=$(find "$prefix" -name logship.pc)
[ -n "$pc" ] || fail "no logship.pc installed"
libdir=$(dirname "$(dirname "$pc")")
for f in "$libdir/liblogship.so" "$libdir/liblogship.a" "$prefix/include/logship/db.h" \
    "$prefix/include/logship/error.h" "$prefix/include/logship/logfmt.h" "$prefix/bin/logship" \
    "$prefix/bin/logshipd" "$prefix/share/man/man1/logship.1" "$prefix/share/man/man1/logshipd.1" \
    "$prefix/lib/ocf/resource.d/logship/logship"; do
    [ -e "$f" ] || fail "not installed: ${f#"$prefix"/}"
done
for p in logship logshipd; do
    "$prefix/bin/$p" --help >"$tmp/help" || fail "$p --help failed"
    for s in NAME SYNOPSIS DESCRIPTION OPTIONS "EXIT STATUS"; do
        grep -qx "$s" "$tmp/help" || fail "$p --help has no $s section"
    done
    grep -q '^\.SH SYNOPSIS' "$prefix/share/man/man1/$p.1" || fail "$p.1 is not a manual page"
done

# The installed tree is relocatable: pkg-config finds the prefix from where logship.pc lies.
export PKG_CONFIG_PATH="$libdir/pkgconfig"
flags=$(pkg-config --cflags --libs logship) || fail "pkg-config --cflags --libs logship failed"
echo "pkg-config --cflags --libs logship: $flags"
cc=${CC:-cc}
# shellcheck disable=SC2086 # flags are words
$cc -std=c11 -Wall -Wextra -Werror $extra -o "$tmp/dbdemo" "$src/tests/install/dbdemo.c" $flags ||
    fail "dbdemo does not build against the installed headers and liblogship.so"
LD_LIBRARY_PATH=$libdir "$tmp/dbdemo" "$tmp/db" || fail "dbdemo (shared) failed"
# shellcheck disable=SC2086
$cc -std=c11 -Wall -Wextra -Werror $extra -o "$tmp/dbdemo-static" "$src/tests/install/dbdemo.c" \
    $(pkg-config --cflags logship) "$libdir/liblogship.a" $(pkg-config --static --libs logship | sed 's/-llogship//') ||
    fail "dbdemo does not link against liblogship.a with pkg-config --static"
"$tmp/dbdemo-static" "$tmp/db-static" || fail "dbdemo (static) failed"

# Exports: every function declared in include/logship/*.h, nothing else.
declared=$(grep -hoE '^[a-z][A-Za-z0-9_ ]*[ *]ls_[a-z0-9_]+\(' "$src"/include/logship/*.h |
    grep -v '^typedef' | grep -oE 'ls_[a-z0-9_]+\($' | tr -d '(' | sort -u)
exported=$(nm -D --defined-only "$libdir/liblogship.so" | awk '$2 == "T" { sub(/@.*/, "", $3); print $3 }' | sort -u)
[ "$declared" = "$exported" ] || {
    echo "declared in include/logship/*.h:" $declared >&2
    echo "exported by liblogship.so:" $exported >&2
    fail "liblogship.so exports differ from the public API"
}
echo "install_test: ok ($(echo "$exported" | wc -l) public functions exported)"
