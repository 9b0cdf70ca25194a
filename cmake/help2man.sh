#!/bin/sh
# help2man.sh PROGRAM NAME VERSION OUT: PROGRAM --help (laid out as a manual: section names in
# capitals at column 0, text indented) as a roff manual page, section 1. Run after each link.
set -eu
prog=$1 name=$2 version=$3 out=$4
"$prog" --help | awk -v name="$name" -v version="$version" -v q="'" '
    BEGIN { printf ".TH %s 1 \"\" \"logship %s\" \"logship manual\"\n", toupper(name), version }
    /^[A-Z][A-Z ]*$/ { if (open) print ".fi"; print ".SH " $0; print ".nf"; open = 1; next }
    { gsub(/\\/, "\\e"); sub(/^    /, ""); c = substr($0, 1, 1); if (c == "." || c == q) $0 = "\\&" $0; print }
    END { if (open) print ".fi" }' >"$out.tmp"
mv "$out.tmp" "$out"
