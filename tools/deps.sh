#!/usr/bin/env bash
# Installs the Debian packages logship needs to build, test and run its demo, if any is missing.
# As root it runs apt-get; otherwise it uses sudo when it can; otherwise it names the packages and
# exits non-zero. Usage: tools/deps.sh [build|test|bench|fuzz|coverage]...
# The test set covers the commands the tests run through /bin/sh besides what a minimal Debian
# (debootstrap --variant=minbase) has: ip (iproute2), curl, mdb_dump (lmdb-utils), zstd, openssl,
# ocf-tester (resource-agents), xmllint (libxml2-utils), corosync and pacemakerd (corosync,
# pacemaker, pacemaker-cli-utils);
# `make fresh-check` proves the list on such a system.
set -euo pipefail

need=(build-essential cmake pkg-config libuv1-dev libssl-dev openssl libzstd-dev liblmdb-dev lmdb-utils
      libxxhash-dev libinih-dev libcjson-dev libmicrohttpd-dev)
for what in "$@"; do
  case "$what" in
    build) ;;
    # prometheus: for /usr/bin/promtool (the status tests lint /metrics with it). The package
    # also holds the server, which its postinst starts under systemd (port 9090); in a container
    # without systemd nothing starts. libfuse3-dev, fuse3: the power-cut file system (cutfs).
    # zstd: unit_load_test pipes the logs through the zstd command.
    # resource-agents: ocf-tester and ocf-shellfuncs for the OCF agent's test (tools/ocf/logship);
    # libxml2-utils: xmllint, with which ocf-tester checks the agent's meta-data.
    # corosync, pacemaker, pacemaker-cli-utils (crm_mon; only recommended by
    # pacemaker): the two-node failover test (tests/cluster/two_node.sh), which starts its own
    # daemons in namespaces (whatever the packages started is left alone).
    test)  need+=(libcriterion-dev iproute2 e2fsprogs curl prometheus libfuse3-dev fuse3 zstd
                  resource-agents libxml2-utils corosync pacemaker pacemaker-cli-utils) ;;
    # postgresql-15: the commit-latency baseline (bench/lb/pg.c runs its own primary and standby;
    # the cluster the package's postinst may create is left alone).
    bench) need+=(rsync gnuplot-nox iproute2 postgresql-15) ;;
    fuzz)  need+=(clang libclang-rt-14-dev) ;;
    coverage) need+=(libcriterion-dev gcovr) ;;
    *) echo "deps.sh: unknown set '$what' (expected build, test, bench, fuzz or coverage)" >&2; exit 2 ;;
  esac
done

# Two runs at once (make -j with build and release-build) would race for apt's locks: the second
# waits here for the first, then finds its packages installed. flock is util-linux's (Essential).
exec 9>"${TMPDIR:-/tmp}/logship-deps.$(id -u).lock"
flock 9

missing=()
for p in "${need[@]}"; do
  st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [ "$st" = "install ok installed" ] || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "logship: installing missing Debian packages: ${missing[*]}" >&2
if [ "$(id -u)" -eq 0 ]; then
  sudo=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  sudo=(sudo -n)
else
  echo "logship: cannot install packages (not root and no password-less sudo)." >&2
  echo "logship: please run:  sudo apt-get install ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq || { echo "logship: apt-get update failed" >&2; exit 1; }
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || {
  echo "logship: apt-get install failed for: ${missing[*]}" >&2; exit 1; }
