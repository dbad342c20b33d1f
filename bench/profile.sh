#!/bin/bash
# Where our time goes: profiles our release plugins' ADD and DEL inside
# throwaway namespaces (nothing outside them is touched; everything is removed
# on exit, also on Ctrl-C).
#
#   tools/build-release.sh
#   sudo bench/profile.sh [RUNS]          # default 20 runs per measurement
#
# Prints, per invocation (medians over RUNS):
#   - perf stat: CPU time (task-clock), page faults, context switches of the
#     plugin's process tree (bridge + the host-local it execs, + nft);
#   - strace -f -c: syscall counts (netlink requests = sendto on the rtnetlink
#     sockets, execs, threads, setns, sysctl writes, flock, fsync);
#   - every `nft` the plugins run: its arguments and wall time (through a
#     logging wrapper put first on PATH);
#   - the floors: exec of /bin/true, `ip link del` of an attached veth;
#   - etcd-ipam (when `etcd` and our etcd-ipam are there): perf stat of a
#     steady-state ADD and DEL and of VERSION, syscall counts, and one ADD's
#     syscall timeline, against a one-member etcd started inside the
#     throwaway host namespace (its own 127.0.0.1; killed on exit).
# Needs: strace (Debian strace), perf (Debian linux-perf), iproute2, nftables.
set -euo pipefail

RUNS=${1:-20}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OURS=${OURS:-$ROOT/target/release-static}
for t in strace perf ip nft python3; do
    command -v "$t" >/dev/null || { echo "missing $t (apt-get install strace linux-perf iproute2 nftables python3)" >&2; exit 1; }
done
for p in bridge host-local portmap; do
    [ -x "$OURS/$p" ] || { echo "$OURS/$p missing: tools/build-release.sh" >&2; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "needs root (network namespaces)" >&2; exit 1; }

TAG="cnit-benchprof-$$"
WORK=$(mktemp -d "/tmp/$TAG-XXXX")
NS=()
ETCD_PID=
cleanup() {
    set +e
    if [ -n "$ETCD_PID" ]; then kill "$ETCD_PID"; wait "$ETCD_PID" 2>/dev/null; fi
    for n in "${NS[@]}"; do ip netns del "$n" 2>/dev/null; done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

newns() { ip netns add "$1"; NS+=("$1"); }

HOST="$TAG-host"
newns "$HOST"
ip -n "$HOST" link set lo up

# A logging nft wrapper: records arguments and wall time of every nft run.
mkdir -p "$WORK/bin"
NFT=$(command -v nft)
cat > "$WORK/bin/nft" <<EOF
#!/bin/bash
# Batches come on stdin ("-f -"): keep them to time nft on them alone.
what="\$*"
if [ "\${@: -1}" = "-" ]; then
    cat > "$WORK/batch"
    if grep -q '"delete"' "$WORK/batch"; then what="\$what (delete batch)"; else what="\$what (add batch)"; fi
    s=\$(date +%s%N); "$NFT" "\$@" < "$WORK/batch"; rc=\$?; e=\$(date +%s%N)
else
    s=\$(date +%s%N); "$NFT" "\$@"; rc=\$?; e=\$(date +%s%N)
fi
echo "\$what rc=\$rc \$(( (e-s)/1000 ))" >> "$WORK/nft.log"
exit \$rc
EOF
chmod +x "$WORK/bin/nft"

conf_bridge() { # $1 = ipMasq true/false
    cat <<EOF
{"cniVersion":"1.0.0","name":"profnet","type":"bridge","bridge":"cni0","isGateway":true,"ipMasq":$1,
 "ipam":{"type":"host-local","dataDir":"$WORK/ipam","ranges":[[{"subnet":"10.88.0.0/16"}]],"routes":[{"dst":"0.0.0.0/0"}]}}
EOF
}

# run PLUGIN CMD ID CONF [WRAPPER...]: one invocation in the host netns.
run() {
    local plugin=$1 cmd=$2 id=$3 conf=$4; shift 4
    echo "$conf" | CNI_COMMAND=$cmd CNI_CONTAINERID=$id CNI_NETNS=/run/netns/$TAG-$id \
        CNI_IFNAME=eth0 CNI_PATH=$OURS PATH="${NFT_WRAP:+$WORK/bin:}$PATH" \
        nsenter --net=/run/netns/$HOST "$@" "$OURS/$plugin" > "$WORK/out.json"
}

portmap_conf() { # $1 = id, $2 = host port; prevResult from $WORK/out.json
    python3 - "$WORK/out.json" "$2" <<'EOF'
import json, sys
prev = json.load(open(sys.argv[1]))
print(json.dumps({"cniVersion": "1.0.0", "name": "profnet", "type": "portmap",
    "capabilities": {"portMappings": True}, "snat": True,
    "runtimeConfig": {"portMappings": [{"hostPort": int(sys.argv[2]), "containerPort": 80, "protocol": "tcp"}]},
    "prevResult": prev}))
EOF
}

median() { sort -n | awk '{a[NR]=$1} END {if (NR==0) print "-"; else print a[int((NR+1)/2)]}'; }

# perf stat of one invocation: appends "task_ms faults cs" to $WORK/stat.<label>
perfstat() {
    local label=$1; shift
    run "$@" perf stat -x, -e task-clock,page-faults,context-switches -o "$WORK/ps.tmp" --
    awk -F, '/task-clock/{t=$1} /page-faults/{f=$1} /context-switches/{c=$1} END {print t, f, c}' \
        "$WORK/ps.tmp" >> "$WORK/stat.$label"
}

report_stat() {
    local label=$1
    printf "  %-26s CPU %6s ms   page faults %5s   context switches %4s\n" "$label" \
        "$(cut -d' ' -f1 "$WORK/stat.$label" | median)" \
        "$(cut -d' ' -f2 "$WORK/stat.$label" | median)" \
        "$(cut -d' ' -f3 "$WORK/stat.$label" | median)"
}

# strace -f -c of one invocation, key counts.
straced() {
    local label=$1; shift
    run "$@" strace -f -c -o "$WORK/sc.$label"
    python3 - "$WORK/sc.$label" "$label" <<'EOF'
import sys
counts = {}
for line in open(sys.argv[1]):
    p = line.split()
    if len(p) in (5, 6) and p[-1].isidentifier() and p[0].replace(".", "").isdigit():
        counts[p[-1]] = int(p[3])
keys = ["execve", "clone3", "setns", "sendto", "sendmsg", "recvfrom", "openat", "write", "flock", "fsync", "fdatasync", "wait4", "mmap", "rt_sigaction"]
print("  %-26s " % sys.argv[2] + "  ".join("%s=%d" % (k, counts.get(k, 0)) for k in keys if counts.get(k, 0)))
EOF
}

c=0
next_ctr() { c=$((c + 1)); CTR="c$c"; newns "$TAG-$CTR"; }

echo "profiling $OURS, $RUNS runs per line (medians)"
echo
echo "bridge + host-local"
for i in 1 2 3; do next_ctr; run bridge ADD $CTR "$(conf_bridge false)"; run bridge DEL $CTR "$(conf_bridge false)"; done
for i in $(seq "$RUNS"); do
    next_ctr
    perfstat bridge-ADD bridge ADD $CTR "$(conf_bridge false)"
    perfstat bridge-DEL bridge DEL $CTR "$(conf_bridge false)"
done
report_stat bridge-ADD
report_stat bridge-DEL
next_ctr
straced "bridge ADD syscalls" bridge ADD $CTR "$(conf_bridge false)"
straced "bridge DEL syscalls" bridge DEL $CTR "$(conf_bridge false)"

echo
echo "bridge (ipMasq) + host-local, then portmap"
: > "$WORK/nft.log"
for i in $(seq "$RUNS"); do
    next_ctr
    port=$((20000 + c))
    perfstat masq-bridge-ADD bridge ADD $CTR "$(conf_bridge true)"
    pm=$(portmap_conf $CTR $port)
    perfstat portmap-ADD portmap ADD $CTR "$pm"
    perfstat portmap-DEL portmap DEL $CTR "$pm"
    perfstat masq-bridge-DEL bridge DEL $CTR "$(conf_bridge true)"
done
report_stat masq-bridge-ADD
report_stat portmap-ADD
report_stat portmap-DEL
report_stat masq-bridge-DEL
next_ctr
straced "masq-bridge ADD syscalls" bridge ADD $CTR "$(conf_bridge true)"
pm=$(portmap_conf $CTR 19999)
straced "portmap ADD syscalls" portmap ADD $CTR "$pm"
straced "portmap DEL syscalls" portmap DEL $CTR "$pm"
straced "masq-bridge DEL syscalls" bridge DEL $CTR "$(conf_bridge true)"

# The same chain again with every nft run logged (not timed above: the
# logging wrapper is a shell script).
export NFT_WRAP=1
for i in $(seq "$RUNS"); do
    next_ctr
    run bridge ADD $CTR "$(conf_bridge true)"
    pm=$(portmap_conf $CTR $((30000 + c)))
    run portmap ADD $CTR "$pm"
    run portmap DEL $CTR "$pm"
    run bridge DEL $CTR "$(conf_bridge true)"
done
unset NFT_WRAP
echo
echo "nft runs made by the plugins (wall ms, median, count)"
python3 - "$WORK/nft.log" <<'EOF'
import sys, collections, statistics
runs = collections.defaultdict(list)
for line in open(sys.argv[1]):
    words = line.split()
    us = int(words[-1]); rc = words[-2]
    runs[(" ".join(words[:-2]), rc)].append(us / 1000)
for (args, rc), v in sorted(runs.items()):
    print("  %-44s %s  %6.2f ms  x%d" % (args, rc, statistics.median(v), len(v)))
EOF

echo
echo "floors"
: > "$WORK/stat.true"
for i in $(seq "$RUNS"); do
    nsenter --net=/run/netns/$HOST perf stat -x, -e task-clock,page-faults,context-switches -o "$WORK/ps.tmp" -- /bin/true
    awk -F, '/task-clock/{t=$1} /page-faults/{f=$1} /context-switches/{c=$1} END {print t, f, c}' "$WORK/ps.tmp" >> "$WORK/stat.true"
done
report_stat true
ip -n "$HOST" link add cni0 type bridge 2>/dev/null || true
ip -n "$HOST" link set cni0 up
: > "$WORK/veth"
for i in $(seq "$RUNS"); do
    next_ctr
    ip -n "$HOST" link add vp$i type veth peer name eth0 netns "$TAG-$CTR"
    ip -n "$HOST" link set vp$i master cni0 up
    ip -n "$TAG-$CTR" addr add 10.99.0.$((i + 1))/16 dev eth0
    ip -n "$TAG-$CTR" link set eth0 up
    s=$(date +%s%N)
    nsenter --net=/run/netns/$HOST ip link del vp$i
    e=$(date +%s%N)
    echo $(( (e - s) / 1000 )) >> "$WORK/veth"
done
printf "  %-26s wall %6s ms (includes nsenter + ip exec)\n" "ip link del veth" \
    "$(awk '{print $1/1000}' "$WORK/veth" | median)"

[ -x "$OURS/etcd-ipam" ] && command -v etcd >/dev/null || exit 0
echo
echo "etcd-ipam against one etcd member (on the host namespace's own 127.0.0.1), steady state"
mkdir -p "$WORK/etcd" "$WORK/locks"
# etcd reads every ETCD_* variable as a flag: keep the caller's out.
env $(env | sed -n 's/^\(ETCD[^=]*\)=.*/-u \1/p') \
    nsenter --net=/run/netns/$HOST etcd --name prof --data-dir "$WORK/etcd/data" \
    --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
    --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
    --initial-cluster prof=http://127.0.0.1:2380 --logger zap --log-level warn --log-outputs stderr \
    > "$WORK/etcd/log" 2>&1 &
ETCD_PID=$!
next_ctr
ECTR=$CTR
EIPAM='{"cniVersion":"1.0.0","name":"profnet","type":"bridge","bridge":"cni0","ipam":{"type":"etcd-ipam","nodeName":"node-a","etcd":{"endpoints":["http://127.0.0.1:2379"],"timeoutMs":5000},"ranges":[[{"subnet":"10.80.0.0/16"}]]}}'
# erun CMD ID [WRAPPER...]: one etcd-ipam invocation in the host netns.
erun() {
    local cmd=$1 id=$2; shift 2
    echo "$EIPAM" | CNI_COMMAND=$cmd CNI_CONTAINERID=$id CNI_NETNS=/run/netns/$TAG-$ECTR \
        CNI_IFNAME=eth0 CNI_PATH=$OURS CNI_ETCD_IPAM_LOCK_DIR=$WORK/locks \
        nsenter --net=/run/netns/$HOST "$@" "$OURS/etcd-ipam" > "$WORK/out.json"
}
estat() { # LABEL: appends the last perf stat to $WORK/stat.LABEL
    awk -F, '/task-clock/{t=$1} /page-faults/{f=$1} /context-switches/{c=$1} END {print t, f, c}' \
        "$WORK/ps.tmp" >> "$WORK/stat.$1"
}
PERF=(perf stat -x, -e task-clock,page-faults,context-switches -o "$WORK/ps.tmp" --)
# The first ADD claims the node's block (and waits for etcd to come up).
for i in $(seq 100); do erun ADD warm0 2>/dev/null && break; sleep 0.1; done
erun ADD warm1
for i in $(seq "$RUNS"); do
    erun ADD e$i "${PERF[@]}"; estat etcd-ipam-ADD
    erun DEL e$i "${PERF[@]}"; estat etcd-ipam-DEL
    echo '{"cniVersion":"1.0.0"}' | CNI_COMMAND=VERSION nsenter --net=/run/netns/$HOST \
        "${PERF[@]}" "$OURS/etcd-ipam" > /dev/null
    estat etcd-ipam-VERSION
done
report_stat etcd-ipam-ADD
report_stat etcd-ipam-DEL
report_stat etcd-ipam-VERSION
erun ADD sc strace -f -c -o "$WORK/sc.e"
python3 - "$WORK/sc.e" <<'PY'
import sys
counts = {}
for line in open(sys.argv[1]):
    p = line.split()
    if len(p) in (5, 6) and p[-1].isidentifier() and p[0].replace(".", "").isdigit():
        counts[p[-1]] = int(p[3])
keys = ["execve", "clone3", "connect", "sendto", "writev", "recvfrom", "read", "write", "flock", "epoll_pwait", "mmap", "futex"]
print("  %-26s " % "etcd-ipam ADD syscalls" + "  ".join("%s=%d" % (k, counts.get(k, 0)) for k in keys if counts.get(k, 0)))
PY
# One ADD's timeline (strace makes every syscall slower: for order, not times).
erun ADD tl strace -f -ttt -e trace=execve,flock,connect,sendto,writev,recvfrom,exit_group -o "$WORK/tl.e"
echo "  one steady-state ADD under strace (ms after execve; strace slows every syscall):"
python3 - "$WORK/tl.e" <<'PY'
import sys
t0 = None
for line in open(sys.argv[1]):
    p = line.split(None, 2)
    if len(p) < 3 or p[2].startswith("+++"):
        continue
    t = float(p[1])
    t0 = t if t0 is None else t0
    call = p[2].split("(")[0]
    result = p[2].rsplit("=", 1)[-1].strip() if "=" in p[2] else ""
    print("    %6.2f  %-11s %s" % ((t - t0) * 1000, call, result))
PY
