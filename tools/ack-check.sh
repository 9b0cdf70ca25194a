#!/bin/sh
# Checks a store against the ack log of `logship load --ack-log FILE` with LMDB's own mdb_dump
# (lmdb-utils), independently of logship's code: every transaction id in FILE (one per line,
# "<run>-<n>") must have its marker key "txn/<id>" in the store's "data" database, and no id may
# appear twice in FILE. Usage: tools/ack-check.sh STORE_DIR ACK_LOG
# Prints "ack-check: N acknowledged ids, every marker present (M markers in the store)" and exits
# 0; otherwise prints each missing or repeated id (the first 20), a summary, and exits 1; bad
# usage or an unreadable store exits 2. Used by tests/unit/load_test.c and the power-cut test.
set -u
if [ $# -ne 2 ]; then
    echo "usage: $0 STORE_DIR ACK_LOG" >&2
    exit 2
fi
store=$1 acks=$2
if [ ! -r "$acks" ]; then
    echo "ack-check: cannot read the ack log $acks" >&2
    exit 2
fi
if ! grep -q . "$acks"; then
    echo "ack-check: 0 acknowledged ids (the ack log $acks is empty)"
    exit 0
fi
dump=$(mktemp) || exit 2
trap 'rm -f "$dump"' EXIT
if ! mdb_dump -p -s data "$store" >"$dump"; then
    echo "ack-check: mdb_dump cannot read the store $store" >&2
    exit 2
fi
# mdb_dump -p: header lines up to HEADER=END, then one line per key and one per value, each
# starting with a space, then DATA=END. Marker keys are printable, so they appear as they are.
awk -v acks="$acks" '
    FNR == NR {
        if (body && $0 == "DATA=END") body = 0
        else if (body) {
            if (iskey && substr($0, 1, 5) == " txn/") { marker[substr($0, 6)] = 1; markers++ }
            iskey = !iskey
        } else if ($0 == "HEADER=END") { body = 1; iskey = 1 }
        next
    }
    $0 == "" { next }
    {
        ids++
        if (seen[$0]++) {
            if (bad++ < 20) printf "ack-check: id %s (line %d of %s) appears more than once\n", $0, FNR, acks
            repeated++
        } else if (!($0 in marker)) {
            if (bad++ < 20) printf "ack-check: acknowledged id %s (line %d of %s) has no marker txn/%s in the store\n", $0, FNR, acks, $0
            missing++
        }
    }
    END {
        if (missing + repeated) {
            printf "ack-check: %d of %d acknowledged ids missing from the store, %d repeated\n", missing, ids, repeated
            exit 1
        }
        printf "ack-check: %d acknowledged ids, every marker present (%d markers in the store)\n", ids, markers
    }' "$dump" "$acks"
