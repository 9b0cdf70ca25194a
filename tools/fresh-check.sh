#!/usr/bin/env bash
# make fresh-check: proves README's two commands on a fresh Debian 12. Builds a minimal Debian
# (debootstrap --variant=minbase bookworm) in a scratch directory, installs only make and git,
# clones the committed tree (HEAD of this checkout) into it and runs `make demo` and `make test`
# there as root, as a new user on a fresh machine would (tools/deps.sh installs the rest).
# Everything is unmounted and removed afterwards, also when interrupted. Needs root and debootstrap.
# Run it before resolving an issue that changes dependencies; README.md says how long it takes.
#
#   tools/fresh-check.sh            scratch directory under ${TMPDIR:-/var/tmp}
#   FRESH_KEEP=1                    keep the scratch directory (still unmounted) for a look
#   FRESH_MIRROR=URL                Debian mirror; default: the one apt uses on this host
#   FRESH_SUITE=bookworm            Debian suite
set -euo pipefail

suite=${FRESH_SUITE:-bookworm}
src=$(cd "$(dirname "$0")/.." && git rev-parse --show-toplevel)
t0=$(date +%s)

say() { echo "fresh-check: $*" >&2; }
elapsed() { local s=$(($(date +%s) - t0)); printf '%dm%02ds' $((s / 60)) $((s % 60)); }

[ "$(id -u)" -eq 0 ] || { say "needs root (debootstrap, chroot, mounts): run 'sudo make fresh-check'"; exit 1; }
command -v debootstrap >/dev/null || { say "debootstrap not found: apt-get install debootstrap"; exit 1; }

# The mirror apt uses here (deb822 .sources files or one-line sources.list entries).
mirror_from_apt() {
    local f
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        awk '/^URIs:/ { for (i = 2; i <= NF; i++) if ($i !~ /security/) { print $i; exit } }' "$f"
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] || continue
        awk '$1 == "deb" && $2 !~ /^\[/ && $2 !~ /security/ && $3 ~ /^'"$suite"'$/ { print $2; exit }' "$f"
    done
}
mirror=${FRESH_MIRROR:-$(mirror_from_apt | head -n 1)}
[ -n "$mirror" ] || { say "no Debian mirror found in /etc/apt/sources.list*: set FRESH_MIRROR"; exit 1; }

scratch=$(mktemp -d "${TMPDIR:-/var/tmp}/logship-fresh.XXXXXX")
root=$scratch/root
mkdir -p "$root"

# Long steps run in the background and are waited for: bash runs the INT trap at once then (a
# foreground child that handles Ctrl-C itself, as apt-get does, would otherwise make bash ignore
# it and go on). The cleanup stops that child and everything running inside the root.
child=
run() {
    "$@" &
    child=$!
    wait "$child"
}

# Unmounts everything under the new root, deepest first (the tests' tmpfs and network
# namespaces included), then removes the scratch directory. Runs on every exit.
cleanup() {
    local rc=$? m p
    trap - EXIT INT TERM HUP
    set +e
    [ -n "$child" ] && kill -TERM "$child" 2>/dev/null && sleep 2 && kill -KILL "$child" 2>/dev/null
    # Processes inside the root (a build, a test's daemon) would keep mounts busy.
    for p in /proc/[0-9]*; do
        [ "$(readlink "$p/root" 2>/dev/null)" = "$root" ] && kill -KILL "${p#/proc/}" 2>/dev/null || true
    done
    mounts() { awk -v r="$root" '$5 == r || index($5, r "/") == 1 { print $5 }' /proc/self/mountinfo | sort -r; }
    for _ in 1 2 3; do
        m=$(mounts)
        [ -z "$m" ] && break
        while read -r t; do umount "$t" 2>/dev/null || umount -l "$t" 2>/dev/null || true; done <<<"$m"
    done
    m=$(mounts)
    if [ -n "$m" ]; then
        say "could not unmount everything under $root; leaving $scratch in place:"
        echo "$m" >&2
    elif [ -n "${FRESH_KEEP:-}" ]; then
        say "kept $scratch"
    else
        rm -rf --one-file-system "$scratch"
    fi
    say "done in $(elapsed) (exit $rc)"
    exit "$rc"
}
trap cleanup EXIT
trap 'say "interrupted"; exit 130' INT TERM HUP

say "debootstrap --variant=minbase $suite from $mirror into $root (log: $scratch/debootstrap.log)"
if ! run debootstrap --variant=minbase "$suite" "$root" "$mirror" >"$scratch/debootstrap.log" 2>&1; then
    tail -n 30 "$scratch/debootstrap.log" >&2
    say "debootstrap failed"
    exit 1
fi
say "minimal Debian ready after $(elapsed)"

# The root bind-mounted on itself makes it a mount point, so that `ip netns add` (which bind-mounts
# under /run/netns) works inside the chroot. Private, so that nothing propagates to the host.
mount --bind "$root" "$root"
mount --make-private "$root"
mount -t proc proc "$root/proc"
mount -t sysfs sysfs "$root/sys"
mount --bind /dev "$root/dev"
mount --bind /dev/pts "$root/dev/pts"
mount -t tmpfs tmpfs "$root/run"
mount -t tmpfs tmpfs "$root/dev/shm"
cp /etc/resolv.conf "$root/etc/resolv.conf"

in_root() {
    chroot "$root" /usr/bin/env -i HOME=/root TERM=dumb LANG=C.UTF-8 \
        PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin ${JOBS:+JOBS=$JOBS} "$@"
}

say "installing make and git"
run in_root sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends make git ca-certificates >/dev/null'

rev=$(git -C "$src" rev-parse --short HEAD)
say "cloning $src at $rev (committed changes only)"
git clone -q --no-hardlinks "$src" "$root/root/logship"
git -C "$root/root/logship" checkout -q --detach "$rev"

status=0
for target in demo test; do
    say "make $target (log: $scratch/make-$target.log) after $(elapsed)"
    if run in_root sh -c "cd /root/logship && make $target" >"$scratch/make-$target.log" 2>&1; then
        tail -n 5 "$scratch/make-$target.log" >&2
        say "make $target passed after $(elapsed)"
    else
        status=1
        tail -n 60 "$scratch/make-$target.log" >&2
        say "make $target FAILED after $(elapsed)"
        [ -n "${FRESH_KEEP:-}" ] || { cp "$scratch/make-$target.log" "${TMPDIR:-/var/tmp}/logship-fresh-$target.log"; say "log kept in ${TMPDIR:-/var/tmp}/logship-fresh-$target.log"; }
    fi
done
[ $status -eq 0 ] && say "PASS: make demo and make test on a fresh $suite" || say "FAIL"
exit $status
