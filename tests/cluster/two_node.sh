#!/bin/sh
#
# Automatic failover by Pacemaker, on one machine (docs/CLUSTER.md): two corosync + pacemaker
# nodes, each in its own network namespace (a veth pair, 10.77.0.1 and 10.77.0.2) and its own
# mount and UTS namespaces (private /etc/corosync, /var/lib/corosync, /var/lib/pacemaker,
# /var/log/pacemaker, /run and /dev/shm, so that their state and IPC do not collide), run a
# promotable clone; the node holding the promoted instance is killed (SIGKILL to every process
# of its network namespace: corosync, the pacemaker daemons, the resource's processes) and the
# other node must promote its instance.
#
#   two_node.sh stateful           the clone is ocf:pacemaker:Stateful (proves the cluster half)
#   two_node.sh logship BINDIR     the clone is ocf:logship:logship (tools/ocf/logship) managing
#                                  BINDIR/logshipd for database db1, node-a active, node-b a
#                                  copy; `logship status` must show db1 active on the promoted
#                                  node; a planned move (crm_resource --move --promoted) to the
#                                  other node under `logship load --ack-log` must lose no
#                                  acknowledged commit; db1 active on the survivor after the
#                                  kill (needs `logship activate`, `resync` and `switchover`);
#                                  LS_OCF_AGENT=FILE installs
#                                  FILE as the agent instead of tools/ocf/logship
#
# Needs root, iproute2, util-linux (unshare, nsenter), corosync and pacemaker (Debian 12:
# apt-get install corosync pacemaker pacemaker-cli-utils). No systemd: the daemons are started
# by hand. Everything it starts is stopped by pid and network namespace on exit, INT and TERM.
# Exit 0 on success, 1 on a failed check (with the reason), 2 on a usage or environment error,
# 77 when skipped.
#
# Without fencing (stonith-enabled=false) Pacemaker trusts that a node it lost is down: that is
# true here (the test killed it), and false in general (a node cut off by the network still
# runs, and both would be active). A real cluster needs fencing (docs/CLUSTER.md).

set -u

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
AGENT=${1:-}
BINDIR=${2:-}
# The agent installed as ocf:logship:logship (another version of it: LS_OCF_AGENT=FILE).
OCF_AGENT=${LS_OCF_AGENT:-$ROOT/tools/ocf/logship}
# Seconds allowed for each wait (the cluster forming, the promotion, the failover).
WAIT=${LS_CLUSTER_WAIT:-60}

die() {
    echo "two_node.sh: $*" >&2
    exit 2
}
fail() {
    echo "two_node.sh: FAIL: $*" >&2
    diagnose
    exit 1
}

case $AGENT in
stateful) ;;
logship)
    [ -n "$BINDIR" ] || die "usage: two_node.sh logship BINDIR (the directory of logship and logshipd)"
    BINDIR=$(cd "$BINDIR" 2>/dev/null && pwd) || die "no directory $2"
    for p in logship logshipd; do
        [ -x "$BINDIR/$p" ] || die "no program $BINDIR/$p"
    done
    [ -r "$OCF_AGENT" ] || die "no agent $OCF_AGENT (LS_OCF_AGENT)"
    ;;
*) die "usage: two_node.sh stateful | two_node.sh logship BINDIR" ;;
esac

# Without root (or where ip netns does not work) it says `skipped: <reason>` and exits 77 (ctest's
# SKIP_RETURN_CODE), as the other namespace tests do, except under CI (CI set), where it fails.
skip() {
    [ -n "${CI:-}" ] && die "$*, and CI must run it"
    echo "skipped: two_node.sh $*" >&2
    exit 77
}
[ "$(id -u)" -eq 0 ] || skip "needs root (network and mount namespaces)"
command -v ip >/dev/null 2>&1 || skip "needs iproute2's ip"
ip netns list >/dev/null 2>&1 || skip "ip netns does not work here"
for c in ip unshare nsenter mount corosync pacemakerd crm_mon corosync-quorumtool; do
    command -v "$c" >/dev/null 2>&1 ||
        die "no $c in PATH (apt-get install iproute2 util-linux corosync pacemaker)"
done
id hacluster >/dev/null 2>&1 || die "no user hacluster (the pacemaker package creates it)"

TAG=$$
NODES="a b"
WORK=$(mktemp -d "/tmp/ls-cluster.XXXXXX") || die "cannot create a temporary directory"
STARTED=""
LOAD_PID=""

ns_of() { echo "lspm$TAG$1"; }

# Kills every process of node $1's network namespace (SIGKILL). The namespace and its end of the
# veth pair stay (a dead node's network port stays up): cleanup deletes them.
kill_node() {
    ns=$(ns_of "$1")
    ip netns list 2>/dev/null | grep -q "^$ns\b" || return 0
    killed=""
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        pids=$(ip netns pids "$ns" 2>/dev/null)
        [ -z "$pids" ] && break
        # shellcheck disable=SC2086
        kill -9 $pids 2>/dev/null
        killed="$killed $pids"
        sleep 0.2
    done
    # The node's launcher shell (the pid we started) is in the namespace too: reap it.
    for p in $STARTED; do
        case $p in "$1":*) wait "${p#*:}" 2>/dev/null ;; esac
    done
    # The others were reparented to init, which reaps them: wait (up to 5 s) until they are gone.
    for p in $killed; do
        t=0
        while [ -e "/proc/$p" ] && [ "$t" -lt 50 ]; do
            sleep 0.1
            t=$((t + 1))
        done
    done
}

cleanup() {
    trap - EXIT INT TERM
    if [ -n "$LOAD_PID" ]; then
        kill -9 "$LOAD_PID" 2>/dev/null
        wait "$LOAD_PID" 2>/dev/null
    fi
    for n in $NODES; do kill_node "$n"; done
    for n in $NODES; do ip netns del "$(ns_of "$n")" 2>/dev/null; done
    if [ -n "${LS_CLUSTER_KEEP:-}" ]; then
        echo "two_node.sh: kept $WORK" >&2
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT
trap 'cleanup; exit 143' TERM

addr_of() {
    case $1 in a) echo 10.77.0.1 ;; b) echo 10.77.0.2 ;; esac
}

# Runs a command inside node $1's namespaces (network, mount, UTS: its daemons' IPC), with the
# launcher's root and working directory (entering a mount namespace resets them, which matters
# in a chroot such as make fresh-check's).
on() {
    n=$1
    shift
    pid=$(cat "$WORK/$n/launcher.pid")
    nsenter -t "$pid" -n -m -u -r -w -- "$@"
}

# ---- the network: one veth pair between the two namespaces ----
ip netns add "$(ns_of a)" || die "ip netns add failed"
ip netns add "$(ns_of b)" || die "ip netns add failed"
ip link add "lspm${TAG}va" type veth peer name "lspm${TAG}vb" || die "cannot create a veth pair"
for n in $NODES; do
    ip link set "lspm${TAG}v$n" netns "$(ns_of "$n")"
    ip -n "$(ns_of "$n")" addr add "$(addr_of "$n")/24" dev "lspm${TAG}v$n"
    ip -n "$(ns_of "$n")" link set "lspm${TAG}v$n" up
    ip -n "$(ns_of "$n")" link set lo up
done

# ---- the logship side: certificates (a throw-away CA, docs/TLS.md) ----
if [ "$AGENT" = logship ]; then
    "$BINDIR/logship" certs "$WORK/certs" --ca --node node-a --node node-b >"$WORK/certs.log" 2>&1 ||
        die "logship certs failed: $(tail -n 3 "$WORK/certs.log")"
fi

# Each node's private directories; $WORK/node is where each node sees its own $WORK/$n (so the
# clone's one set of parameters names one path for both nodes' logship configurations).
mkdir -p "$WORK/node"
for n in $NODES; do
    d=$WORK/$n
    mkdir -p "$d/etc-corosync" "$d/lib-corosync" "$d/log-corosync" "$d/run" "$d/shm" \
        "$d/lib-pacemaker/cib" "$d/lib-pacemaker/pengine" "$d/lib-pacemaker/blackbox" \
        "$d/lib-pacemaker/cores" "$d/log-pacemaker/bundles" "$d/ocf"
    chmod 1777 "$d/shm"
    chmod 755 "$d/run"
    mkdir -p "$d/run/lock" "$d/run/resource-agents" "$d/run/crm"
    chown -R hacluster:haclient "$d/lib-pacemaker" "$d/log-pacemaker"
    chmod 750 "$d/lib-pacemaker"/* && chmod 770 "$d/log-pacemaker"
    cat >"$d/etc-corosync/corosync.conf" <<EOF
# node-$n of the two_node.sh test cluster
totem {
    version: 2
    cluster_name: ls-test
    transport: knet
    crypto_cipher: none
    crypto_hash: none
    token: 1000
}
logging {
    to_stderr: no
    to_syslog: no
    to_logfile: yes
    logfile: $d/log-corosync/corosync.log
    timestamp: on
}
quorum {
    provider: corosync_votequorum
    two_node: 1
}
nodelist {
    node {
        name: node-a
        nodeid: 1
        ring0_addr: 10.77.0.1
    }
    node {
        name: node-b
        nodeid: 2
        ring0_addr: 10.77.0.2
    }
}
EOF
done

# The resource: a promotable clone, monitored every second (promoted) and two (unpromoted).
if [ "$AGENT" = stateful ]; then
    RSC="st"
    PRIM='<primitive id="st" class="ocf" provider="pacemaker" type="Stateful"/>'
else
    RSC="ls"
    PRIM="<primitive id=\"ls\" class=\"ocf\" provider=\"logship\" type=\"logship\">
        <instance_attributes id=\"ls-params\">
          <nvpair id=\"ls-config\" name=\"config\" value=\"$WORK/node/logship.conf\"/>
          <nvpair id=\"ls-database\" name=\"database\" value=\"db1\"/>
          <nvpair id=\"ls-logship\" name=\"logship\" value=\"$BINDIR/logship\"/>
          <nvpair id=\"ls-logshipd\" name=\"logshipd\" value=\"$BINDIR/logshipd\"/>
          <nvpair id=\"ls-logfile\" name=\"logfile\" value=\"$WORK/node/logshipd.log\"/>
        </instance_attributes>
      </primitive>"
fi
PRIM_OPS="<operations>
          <op id=\"$RSC-mon-p\" name=\"monitor\" interval=\"1s\" role=\"Promoted\" timeout=\"20s\"/>
          <op id=\"$RSC-mon-u\" name=\"monitor\" interval=\"2s\" role=\"Unpromoted\" timeout=\"20s\"/>
        </operations>"
# The operations go inside the primitive (before its closing tag).
PRIM=$(printf '%s\n' "$PRIM" | sed "s#\(<primitive [^>]*\)/>#\1>\n</primitive>#")
PRIM=$(printf '%s\n' "$PRIM" | awk -v ops="$PRIM_OPS" '/<\/primitive>/ { print ops } { print }')

# The same initial CIB on both nodes (so the cluster starts configured: no dc-deadtime wait for
# a configuration step). stonith-enabled=false: see the header.
for n in $NODES; do
    cat >"$WORK/$n/lib-pacemaker/cib/cib.xml" <<EOF
<cib validate-with="pacemaker-3.9" admin_epoch="1" epoch="1" num_updates="0">
  <configuration>
    <crm_config>
      <cluster_property_set id="cib-bootstrap-options">
        <nvpair id="opt-stonith" name="stonith-enabled" value="false"/>
        <nvpair id="opt-dc-deadtime" name="dc-deadtime" value="5s"/>
        <nvpair id="opt-recheck" name="cluster-recheck-interval" value="1min"/>
        <nvpair id="opt-load" name="load-threshold" value="1000%"/>
      </cluster_property_set>
    </crm_config>
    <nodes/>
    <resources>
      <clone id="$RSC-clone">
        <meta_attributes id="$RSC-clone-meta">
          <nvpair id="$RSC-promotable" name="promotable" value="true"/>
          <nvpair id="$RSC-promoted-max" name="promoted-max" value="1"/>
          <nvpair id="$RSC-notify" name="notify" value="true"/>
        </meta_attributes>
        $PRIM
      </clone>
    </resources>
    <constraints/>
    <rsc_defaults>
      <meta_attributes id="rsc-defaults">
        <nvpair id="rsc-stickiness" name="resource-stickiness" value="1"/>
        <nvpair id="rsc-failures" name="migration-threshold" value="3"/>
      </meta_attributes>
    </rsc_defaults>
  </configuration>
  <status/>
</cib>
EOF
    chown hacluster:haclient "$WORK/$n/lib-pacemaker/cib/cib.xml"
    chmod 600 "$WORK/$n/lib-pacemaker/cib/cib.xml"
done

# Each node's launcher: in the node's network namespace, a new mount and UTS namespace with the
# node's directories over the daemons' paths, then corosync and pacemakerd in the foreground.
cat >"$WORK/node.sh" <<'EOF'
#!/bin/sh
set -e
d=$1 n=$2 work=$3
mount --make-rprivate /
mount --bind "$d/etc-corosync" /etc/corosync
mount --bind "$d/lib-corosync" /var/lib/corosync
mount --bind "$d/log-corosync" /var/log/corosync
mount --bind "$d/lib-pacemaker" /var/lib/pacemaker
mount --bind "$d/log-pacemaker" /var/log/pacemaker
mount --bind "$d/shm" /dev/shm
mount --bind "$d/run" /run
mount --bind "$d" "$work/node"
# The OCF agents: the installed providers, and tools/ocf/logship as provider logship.
mount -t tmpfs -o mode=755 ocf "$d/ocf"
for p in /usr/lib/ocf/resource.d/*; do
    mkdir "$d/ocf/${p##*/}"
    mount --bind "$p" "$d/ocf/${p##*/}"
done
mkdir -p "$d/ocf/logship"
cp "$work/agent" "$d/ocf/logship/logship"
chmod 755 "$d/ocf/logship/logship"
mount --rbind "$d/ocf" /usr/lib/ocf/resource.d
hostname "node-$n"
set +e
corosync -f >"$d/corosync.out" 2>&1 &
echo $! >"$d/corosync.pid"
pacemakerd >"$d/pacemakerd.out" 2>&1 &
echo $! >"$d/pacemakerd.pid"
wait
EOF
cp "$OCF_AGENT" "$WORK/agent"

# ---- the logship configurations (logship agent only) ----
# node-a holds db1 active and ships it to node-b, which holds a copy; each lists the other as a
# target, over which it ships once activated (docs/CONFIG.md). Inside its node each file is
# $WORK/node/logship.conf, with the node's data under $WORK/node/data.
if [ "$AGENT" = logship ]; then
    for n in $NODES; do
        o=$([ "$n" = a ] && echo b || echo a)
        if [ "$n" = a ]; then
            db="role = active
targets = node-b"
        else
            db="role = passive
source = node-a"
        fi
        cat >"$WORK/$n/logship.conf" <<EOF
[node]
name = node-$n
data_dir = $WORK/node/data
control_socket = $WORK/node/logshipd.sock
[tls]
ca = $WORK/certs/ca.pem
cert = $WORK/certs/node-$n.pem
key = $WORK/certs/node-$n.key
[listen]
address = $(addr_of "$n"):7401
[target node-$o]
network = repl $(addr_of "$o"):7401 bind=$(addr_of "$n")
heartbeat_interval = 200ms
heartbeat_timeout = 1000ms
[database db1]
$db
EOF
        mkdir -p "$WORK/$n/data"
    done
    # Some transactions in db1 on node-a before the cluster starts logshipd (docs/WRITER.md).
    "$BINDIR/logship" load "$WORK/a/data/db1" --transactions 200 --records-per-txn 10 \
        --value-size 100 --threads 1 --seed 1 >"$WORK/load.log" 2>&1 ||
        die "logship load failed: $(tail -n 3 "$WORK/load.log")"
fi

START=$(date +%s)
for n in $NODES; do
    ip netns exec "$(ns_of "$n")" unshare -m -u --propagation private \
        sh "$WORK/node.sh" "$WORK/$n" "$n" "$WORK" </dev/null >"$WORK/$n/launcher.out" 2>&1 &
    echo $! >"$WORK/$n/launcher.pid"
    STARTED="$STARTED $n:$!"
done

# Prints what the surviving nodes see, and the ends of their logs (on a failure).
diagnose() {
    for n in $NODES; do
        [ -r "$WORK/$n/launcher.pid" ] || continue
        kill -0 "$(cat "$WORK/$n/launcher.pid")" 2>/dev/null || continue
        echo "---- node-$n: crm_mon -1" >&2
        on "$n" crm_mon -1 -r 2>&1 | sed 's/^/  /' >&2
        echo "---- node-$n: last lines of pacemaker.log" >&2
        tail -n 15 "$WORK/$n/log-pacemaker/pacemaker.log" 2>/dev/null | sed 's/^/  /' >&2
        echo "---- node-$n: launcher output" >&2
        sed 's/^/  /' "$WORK/$n/launcher.out" "$WORK/$n/corosync.out" >&2 2>/dev/null
        if [ -e "$WORK/$n/logshipd.log" ]; then
            echo "---- node-$n: last lines of logshipd.log" >&2
            tail -n 10 "$WORK/$n/logshipd.log" | sed 's/^/  /' >&2
        fi
    done
}

# The clone's instances seen from node $1: one "ROLE NODE" line each, from crm_mon's XML, whose
# role is the settled one (Unpromoted, Promoted) or the pending action (Starting, Promoting...);
# a failed instance says "failed NODE".
instances() {
    on "$1" crm_mon -1 --output-as=xml 2>/dev/null | tr '\n' ' ' | sed 's/<resource /\n&/g' |
        sed -n "s/^<resource id=\"$RSC\" [^>]*role=\"\([A-Za-z]*\)\"[^>]*failed=\"\([a-z]*\)\"\
[^>]*>[[:space:]]*<node name=\"\(node-[ab]\)\".*/\1 \2 \3/p" |
        awk '{ print ($2 == "false" ? $1 : "failed"), $3 }'
}

# The node where the clone is promoted (its promote done), seen from node $1 (nothing if none).
promoted_on() {
    instances "$1" | awk '$1 == "Promoted" { print $2; exit }'
}

# Waits until `promoted_on $1` prints something other than $2 (the dead node, or ""): echoes it.
wait_promoted() {
    t=0
    while [ "$t" -lt "$((WAIT * 2))" ]; do
        p=$(promoted_on "$1")
        if [ -n "$p" ] && [ "$p" != "$2" ]; then
            echo "$p"
            return 0
        fi
        sleep 0.5
        t=$((t + 1))
    done
    return 1
}

first=$(wait_promoted a "") || fail "no instance of $RSC-clone was promoted within ${WAIT}s"
formed=$(($(date +%s) - START))
echo "two_node.sh: cluster formed, $RSC-clone promoted on $first (${formed}s)"
case $first in node-a) victim=a survivor=b ;; *) victim=b survivor=a ;; esac

# db1 must be active where the clone is promoted.
db1_active() {
    st=$(on "$1" "$BINDIR/logship" status -c "$WORK/node/logship.conf" --json) ||
        fail "logship status on node-$1 failed"
    # An entry of "copies" or "databases" (docs/STATUS.md) naming db1 with the role active.
    printf '%s\n' "$st" | tr -d ' \t\n' | grep -q '"database":"db1","role":"active"' ||
        fail "ls-clone is promoted on node-$1 but logship status there does not show db1 active: $st"
    echo "two_node.sh: logship status on node-$1 shows db1 active"
}
# Stateful's own record of its role (its state file in the node's /run).
stateful_role() {
    cat "$WORK/$1/run/Stateful-st.state" 2>/dev/null
}
if [ "$AGENT" = logship ]; then
    db1_active "$victim"
else
    [ "$(stateful_role "$victim")" = Promoted ] ||
        fail "st-clone is promoted on $first but its state file says '$(stateful_role "$victim")'"
fi

# Waits until node $1's instance is Unpromoted (seen from node $1): a copy to promote.
wait_unpromoted() {
    t=0
    until instances "$1" | grep -q "^Unpromoted node-$1\$"; do
        t=$((t + 1))
        [ "$t" -lt "$((WAIT * 2))" ] || fail "no Unpromoted instance of $RSC-clone on node-$1"
        sleep 0.5
    done
}

# ---- a planned move (logship agent only): crm_resource --move --promoted of the promoted
# instance to the other node under a running `logship load --ack-log` on it. The agent's demote
# runs `logship switchover db1 --to <other>` (its pre-demote notification named the promotion),
# the promote there finds db1 active; the load is fenced, every acknowledged id is on the new
# active. The kill below then fails the database back over to the old active, now its copy.
if [ "$AGENT" = logship ]; then
    wait_unpromoted "$survivor"
    # node-b's copy Healthy (switchover's precondition), as its daemon reports it.
    t=0
    until on "$survivor" "$BINDIR/logship" status -c "$WORK/node/logship.conf" --json 2>/dev/null |
        tr -d ' \t\n' | grep -q '"state":"Healthy"'; do
        t=$((t + 1))
        [ "$t" -lt "$((WAIT * 2))" ] || fail "db1's copy on node-$survivor is not Healthy"
        sleep 0.5
    done
    "$BINDIR/logship" load "$WORK/$victim/data/db1" --transactions 100000000 --rate 1000 \
        --threads 2 --target-size 65536 --seed 2 --ack-log "$WORK/acked" \
        >"$WORK/move-load.log" 2>&1 &
    LOAD_PID=$!
    t=0
    until [ "$(wc -l 2>/dev/null <"$WORK/acked" || echo 0)" -ge 100 ]; do
        t=$((t + 1))
        [ "$t" -lt "$((WAIT * 2))" ] ||
            fail "the load on node-$victim acknowledged nothing: $(tail -n 3 "$WORK/move-load.log")"
        sleep 0.5
    done
    MOVE_AT=$(date +%s)
    on "$victim" crm_resource --move --promoted -r "$RSC-clone" -N "node-$survivor" \
        >"$WORK/move.log" 2>&1 || fail "crm_resource --move failed: $(cat "$WORK/move.log")"
    moved=$(wait_promoted "$survivor" "$first") ||
        fail "crm_resource --move did not promote $RSC-clone elsewhere within ${WAIT}s"
    [ "$moved" = "node-$survivor" ] || fail "moved to $moved, expected node-$survivor"
    echo "two_node.sh: planned move: $RSC-clone promoted on $moved $(($(date +%s) - MOVE_AT))s after crm_resource --move"
    db1_active "$survivor"
    # The old active is the new one's copy (switchover's last step, no resync, no restart).
    st=$(on "$victim" "$BINDIR/logship" status -c "$WORK/node/logship.conf" --json) ||
        fail "logship status on node-$victim failed"
    printf '%s\n' "$st" | tr -d ' \t\n' | grep -q '"database":"db1","role":"copy"' ||
        fail "after the move, logship status on node-$victim does not show db1 a copy: $st"
    echo "two_node.sh: logship status on node-$victim shows db1 a copy"
    t=0
    while kill -0 "$LOAD_PID" 2>/dev/null; do
        t=$((t + 1))
        [ "$t" -lt "$((WAIT * 2))" ] || fail "the load on node-$victim still runs after the move"
        sleep 0.5
    done
    wait "$LOAD_PID"
    load_rc=$?
    LOAD_PID=""
    if [ "$load_rc" -eq 0 ] ||
        ! grep -q "is fenced: node-$survivor becomes the active" "$WORK/move-load.log"; then
        fail "the load on node-$victim did not end fenced for node-$survivor (exit $load_rc): $(tail -n 3 "$WORK/move-load.log")"
    fi
    sh "$ROOT/tools/ack-check.sh" "$WORK/$survivor/data/db1/store" "$WORK/acked" >"$WORK/ack-check.log" 2>&1 ||
        fail "an acknowledged commit is missing on node-$survivor: $(tail -n 3 "$WORK/ack-check.log")"
    echo "two_node.sh: node-$survivor holds every acknowledged id: $(tail -n 1 "$WORK/ack-check.log")"
    on "$victim" crm_resource --clear -r "$RSC-clone" >/dev/null 2>&1 || fail "crm_resource --clear failed"
    first=$moved
    case $first in node-a) victim=a survivor=b ;; *) victim=b survivor=a ;; esac
fi

# The survivor's instance must have started (Unpromoted) before the kill: a copy to promote.
wait_unpromoted "$survivor"

if [ "$AGENT" = stateful ]; then
    [ "$(stateful_role "$survivor")" = Unpromoted ] ||
        fail "before the kill, st on node-$survivor says '$(stateful_role "$survivor")', not Unpromoted"
fi

KILL_AT=$(date +%s)
count=$(ip netns pids "$(ns_of "$victim")" | wc -l)
echo "two_node.sh: SIGKILL to every process of $first ($count processes)"
kill_node "$victim"
next=$(wait_promoted "$survivor" "$first") ||
    fail "node-$survivor did not promote $RSC-clone within ${WAIT}s of $first's death"
[ "$next" = "node-$survivor" ] || fail "promoted on $next, expected node-$survivor"
echo "two_node.sh: $RSC-clone promoted on $next $(($(date +%s) - KILL_AT))s after the kill"

# The survivor is quorate alone (two_node: 1), and its instance is what was promoted.
on "$survivor" corosync-quorumtool -s 2>&1 | grep -q '^Quorate: *Yes' ||
    fail "node-$survivor is not quorate: $(on "$survivor" corosync-quorumtool -s 2>&1 | tr '\n' ' ')"
if [ "$AGENT" = logship ]; then
    db1_active "$survivor"
else
    [ "$(stateful_role "$survivor")" = Promoted ] ||
        fail "st on node-$survivor says '$(stateful_role "$survivor")', not Promoted"
fi
echo "two_node.sh: PASS ($(($(date +%s) - START))s)"
