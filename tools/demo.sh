#!/usr/bin/env bash
# The demo: a simulated three-node cluster on one machine. An underlay
# namespace with a bridge and etcd on it, three node namespaces on that
# bridge each running overlayd, two pods per node made through cnitool with
# vxlan + etcd-ipam + portmap + loopback, a ping matrix across nodes, a page
# fetched through a mapped host port from another node, a node that stops
# and is dropped, a late node that joins, and a teardown that leaves
# nothing behind.
#
#   tools/demo.sh                 the cluster demo
#   tools/demo.sh --single-node   two containers on one bridge (tools/demo-single-node.sh)
#
# Everything happens in namespaces made here; the machine's own interfaces,
# routes and nft ruleset are never touched. CNI_DEMO_BIN=DIR uses binaries
# already built there (the test suite's quick run) instead of building.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "${1:-}" = "--single-node" ] && exec tools/demo-single-node.sh

if [ -z "${CNI_DEMO_BIN:-}" ]; then
  tools/install-deps.sh
  cargo build --workspace --bins --locked
fi
bin=${CNI_DEMO_BIN:-${CARGO_TARGET_DIR:-$PWD/target}/debug}

TTL=5                 # overlayd's lease TTL: short, so a dead node goes quickly
UL=192.168.100        # the underlay, inside our namespaces only
work=$(mktemp -d /tmp/cni-cluster-demo.XXXXXX)
tag=$$
ul=cnd-ul-$tag
nodes=() pods=() pids=() httpd_pid=
t0=$(date +%s%N)
ms() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

cleanup() {
  [ -n "$httpd_pid" ] && kill "$httpd_pid" 2>/dev/null || true
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  for n in "${pods[@]}" "${nodes[@]}" "$ul"; do ip netns del "$n" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

in_ul() { ip netns exec "$ul" "$@"; }
etcdctl_() { in_ul env ETCDCTL_API=3 etcdctl --endpoints "http://$UL.1:2379" "$@"; }
overlayctl() { in_ul "$bin/overlayctl" --etcd-endpoints "http://$UL.1:2379" "$@"; }
ipamctl() { in_ul "$bin/ipamctl" --etcd-endpoints "http://$UL.1:2379" "$@"; }

# Node i: namespace cnd-n<i>, underlay address $UL.1<i>, its conflist.
add_node() {
  local i=$1 n=cnd-n$1-$tag
  nodes+=("$n")
  ip netns add "$n"
  ip -n "$n" link set lo up
  ip link add "cnd$i-$tag" netns "$ul" type veth peer name eth0 netns "$n"
  ip -n "$ul" link set "cnd$i-$tag" master ul0 up
  ip -n "$n" addr add "$UL.1$i/24" dev eth0
  ip -n "$n" link set eth0 up
  ip -n "$n" route add default via "$UL.1"
  mkdir -p "$work/n$i/net.d"
  cat > "$work/n$i/net.d/10-pods.conflist" <<JSON
{ "cniVersion": "1.1.0", "name": "pods", "plugins": [
  { "type": "vxlan", "subnetFile": "$work/n$i/subnet.json",
    "ipam": { "type": "etcd-ipam", "nodeName": "node-$i",
              "etcd": { "endpoints": ["http://$UL.1:2379"], "timeoutMs": 10000 } } },
  { "type": "portmap", "capabilities": { "portMappings": true } },
  { "type": "loopback" } ] }
JSON
  ip netns exec "$n" "$bin/overlayd" --etcd-endpoints "http://$UL.1:2379" --node-name "node-$i" \
    --public-ip "$UL.1$i" --subnet-file "$work/n$i/subnet.json" --lease-ttl "$TTL" \
    --reconcile-interval 2 2>>"$work/overlayd-$i.log" &
  pids[i]=$!
}

cnitool() { # node, then cnitool's arguments
  local i=$1; shift
  ip netns exec "cnd-n$i-$tag" env NETCONFPATH="$work/n$i/net.d" CNI_PATH="$bin" \
    CNI_CACHE_DIR="$work/n$i/cache" CNI_ETCD_IPAM_LOCK_DIR="$work/n$i/locks" "$bin/cnitool" "$@"
}

add_pod() { # node, pod name
  local i=$1 p=cnd-$2-$tag t; pods+=("$p"); ip netns add "$p"
  t=$(date +%s%N)
  cnitool "$i" add pods "/run/netns/$p" >/dev/null
  echo "  $2 on node-$i: $(ip -n "$p" -4 -o addr show eth0 | awk '{print $4}')   (cnitool add: $(ms "$t") ms)"
}
pod_ip() { ip -n "cnd-$1-$tag" -4 -o addr show eth0 | awk '{print $4}' | cut -d/ -f1; }

wait_until() { # seconds, command...: polls every 100 ms; prints the ms it took
  local limit=$1 t; shift; t=$(date +%s%N)
  until "$@" >/dev/null 2>&1; do
    (( ($(date +%s%N) - t) / 1000000000 >= limit )) && return 1
    sleep 0.1
  done
  ms "$t"
}
has_route() { ip -n "cnd-n$1-$tag" route show "$2" | grep -q vxlan; }
no_route() { ! has_route "$@"; }

step "the underlay: a bridge, and etcd on $UL.1"
ip netns add "$ul"; ip -n "$ul" link set lo up
ip -n "$ul" link add ul0 type bridge; ip -n "$ul" addr add "$UL.1/24" dev ul0; ip -n "$ul" link set ul0 up
ip netns exec "$ul" env ETCD_UNSUPPORTED_ARCH="$(dpkg --print-architecture)" etcd --data-dir "$work/etcd" --name demo \
  --listen-client-urls "http://$UL.1:2379" --advertise-client-urls "http://$UL.1:2379" \
  --listen-peer-urls "http://$UL.1:2380" --log-level error --logger zap 2>"$work/etcd.log" &
pids+=($!)
wait_until 20 etcdctl_ endpoint health >/dev/null && echo "etcd is up"

step "overlayctl config set: the overlay network"
echo '{"network": "10.244.0.0/16", "subnetLen": 24, "vni": 1}' | overlayctl config set -
overlayctl config get

step "three nodes, each running overlayd"
for i in 1 2 3; do add_node "$i"; done
for i in 1 2 3; do wait_until 30 test -s "$work/n$i/subnet.json" >/dev/null; done
subnet() { sed -n 's/.*"subnet": "\(.*\)".*/\1/p' "$work/n$1/subnet.json"; }
for i in 1 2 3; do
  for j in 1 2 3; do [ "$i" = "$j" ] || wait_until 20 has_route "$i" "$(subnet "$j")" >/dev/null; done
done
echo "every node has a route to every other node's subnet $(ms "$t0") ms after the demo started"
overlayctl nodes

step "two pods per node: cnitool add (vxlan + etcd-ipam + portmap + loopback)"
for i in 1 2 3; do add_pod "$i" "n$i-a"; add_pod "$i" "n$i-b"; done
CAP_ARGS='{"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}]}' add_pod 1 web

step "ping matrix: every pod to every other pod (✓ = reply)"
names=(n1-a n1-b n2-a n2-b n3-a n3-b)
printf '%8s' ""; for b in "${names[@]}"; do printf '%7s' "$b"; done; echo
fails=0
for a in "${names[@]}"; do
  printf '%8s' "$a"
  for b in "${names[@]}"; do
    if [ "$a" = "$b" ]; then printf '%7s' "-";
    elif ip netns exec "cnd-$a-$tag" ping -c1 -W1 "$(pod_ip "$b")" >/dev/null 2>&1; then printf '%6s✓' "";
    else printf '%6s✗' ""; fails=$((fails + 1)); fi
  done; echo
done
[ "$fails" = 0 ] || { echo "$fails pings failed" >&2; exit 1; }

step "a page served in pod 'web' on node-1, fetched from pod n3-a on node-3 via node-1's port 8080"
mkdir -p "$work/www"; echo "hello from pod web on node-1 ($(pod_ip web))" > "$work/www/index.html"
ip netns exec "cnd-web-$tag" busybox httpd -f -p 80 -h "$work/www" & httpd_pid=$!
wait_until 5 ip netns exec "cnd-n3-a-$tag" busybox wget -qO /dev/null "http://$UL.11:8080/" >/dev/null
ip netns exec "cnd-n3-a-$tag" busybox wget -qO- "http://$UL.11:8080/"

step "ipamctl usage: the pools (one per node subnet) and their use"
ipamctl usage

step "node-2's overlayd stops (SIGTERM keeps its lease): the others drop it after the TTL ($TTL s)"
kill -TERM "${pids[2]}"; wait "${pids[2]}" 2>/dev/null || true
s2=$(subnet 2)
took=$(wait_until $((TTL + 15)) no_route 1 "$s2") && took3=$(wait_until 15 no_route 3 "$s2")
echo "node-1 dropped node-2's route after ${took} ms, node-3 by then too"
overlayctl nodes

step "a late fourth node joins"
t=$(date +%s%N); add_node 4
wait_until 30 test -s "$work/n4/subnet.json" >/dev/null
for i in 1 3; do wait_until 20 has_route "$i" "$(subnet 4)" >/dev/null; done
echo "node-1 and node-3 route to node-4 $(ms "$t") ms after its overlayd started (process start included)"
add_pod 4 n4-a
ip netns exec "cnd-n1-a-$tag" ping -c1 -W2 "$(pod_ip n4-a)" | grep -E "bytes from"

step "teardown: cnitool del every pod, stop overlayd and etcd"
kill "$httpd_pid"; wait "$httpd_pid" 2>/dev/null || true; httpd_pid=
t=$(date +%s%N)
for p in "${pods[@]}"; do
  name=${p#cnd-}; name=${name%-$tag}; node=${name:1:1}; [ "$name" = web ] && node=1
  cnitool "$node" del pods "/run/netns/$p" || { echo "DEL of $name on node-$node failed" >&2; exit 1; }
done
echo "cnitool del of ${#pods[@]} pods: $(ms "$t") ms"
echo "etcd-ipam handles left: $(ipamctl --json handles | grep -o containerID | wc -l)"
echo "nft rules still tagged for network pods: $(for n in "${nodes[@]}"; do ip netns exec "$n" nft list ruleset 2>/dev/null; done | grep -c 'comment "pods/' || true)"
for p in "${pods[@]}"; do ip netns del "$p"; done; pods=()
for i in 1 3 4; do kill -TERM "${pids[i]}" 2>/dev/null || true; wait "${pids[i]}" 2>/dev/null || true; done
kill "${pids[0]}"; wait "${pids[0]}" 2>/dev/null || true; pids=()
for n in "${nodes[@]}"; do ip netns del "$n"; done; nodes=(); ip netns del "$ul"
echo "namespaces of the demo left: $(ip netns list | grep -c -- "-$tag" || true)"
echo "overlayd / etcd processes of the demo left: $(pgrep -f "$work" | grep -vx "$$" | wc -l)"; pgrep -af "$work" >&2 || true

step "done in $(ms "$t0") ms"
