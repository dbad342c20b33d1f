#!/usr/bin/env bash
# The single-node demo (tools/demo.sh --single-node): builds the suite, then runs two throwaway containers (network
# namespaces) on one bridge network through cnitool, exactly as a runtime
# would: bridge + host-local + portmap + loopback. It prints the results,
# pings one container from the other, serves a page in one and fetches it
# through the mapped host port, then tears everything down.
#
# Everything happens inside a throwaway "host" namespace made here, so the
# machine's own interfaces, routes and nft ruleset are never touched.
set -euo pipefail
cd "$(dirname "$0")/.."

# CNI_DEMO_BIN=DIR: binaries already built there (the test suite's quick run).
if [ -z "${CNI_DEMO_BIN:-}" ]; then
  tools/install-deps.sh
  cargo build --workspace --bins --locked
fi
bin=${CNI_DEMO_BIN:-${CARGO_TARGET_DIR:-$PWD/target}/debug}

work=$(mktemp -d /tmp/cni-demo.XXXXXX)
host=cni-demo-host-$$
ctr=(cni-demo-a-$$ cni-demo-b-$$)
httpd_pid=
cleanup() {
  [ -n "$httpd_pid" ] && kill "$httpd_pid" 2>/dev/null
  for n in "${ctr[@]}" "$host"; do ip netns del "$n" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

# The "node": its own namespace with an uplink address the port mapping serves on.
ip netns add "$host"
ip -n "$host" link set lo up
ip -n "$host" link add uplink0 type bridge
ip -n "$host" addr add 192.0.2.10/24 dev uplink0
ip -n "$host" link set uplink0 up
for n in "${ctr[@]}"; do ip netns add "$n"; done

mkdir -p "$work/net.d"
cat > "$work/net.d/10-demo.conflist" <<JSON
{
  "cniVersion": "1.1.0",
  "name": "demo",
  "plugins": [
    { "type": "bridge", "bridge": "cni-demo0", "isGateway": true, "ipMasq": true,
      "ipam": { "type": "host-local", "dataDir": "$work/ipam",
                "ranges": [[{ "subnet": "10.77.0.0/24" }]],
                "routes": [{ "dst": "0.0.0.0/0" }] } },
    { "type": "portmap", "capabilities": { "portMappings": true } },
    { "type": "loopback" }
  ]
}
JSON

cnitool() {
  ip netns exec "$host" env NETCONFPATH="$work/net.d" CNI_PATH="$bin" \
    CNI_CACHE_DIR="$work/cache" "$bin/cnitool" "$@"
}

step "cnitool add demo /run/netns/${ctr[0]}   (with a port mapping 8080 -> 80)"
CAP_ARGS='{"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}]}' \
  cnitool add demo "/run/netns/${ctr[0]}"
step "cnitool add demo /run/netns/${ctr[1]}"
cnitool add demo "/run/netns/${ctr[1]}"

ip_a=$(ip -n "${ctr[0]}" -4 -o addr show eth0 | awk '{print $4}' | cut -d/ -f1)
ip_b=$(ip -n "${ctr[1]}" -4 -o addr show eth0 | awk '{print $4}' | cut -d/ -f1)

step "container b ($ip_b) pings container a ($ip_a)"
ip netns exec "${ctr[1]}" ping -c2 -W2 "$ip_a"

step "a page served in container a, fetched through the mapped host port"
mkdir -p "$work/www"
echo "hello from container a ($ip_a)" > "$work/www/index.html"
ip netns exec "${ctr[0]}" busybox httpd -f -p 80 -h "$work/www" &
httpd_pid=$!
sleep 0.3
echo "-- from container b via the node address 192.0.2.10:8080"
ip netns exec "${ctr[1]}" busybox wget -qO- http://192.0.2.10:8080/
echo "-- from the node itself via localhost:8080"
ip netns exec "$host" busybox wget -qO- http://127.0.0.1:8080/

step "the node's nftables rules (tables owned by the plugins)"
ip netns exec "$host" nft list tables

step "teardown: cnitool del, in reverse plugin order"
kill "$httpd_pid"; wait "$httpd_pid" 2>/dev/null || true; httpd_pid=
for n in "${ctr[@]}"; do cnitool del demo "/run/netns/$n" && echo "DEL $n done"; done
echo "leases left: $(ls "$work/ipam/demo" | grep -c '^10\.' || true)"
echo "nft rules and map entries still tagged for network demo: $(ip netns exec "$host" nft list ruleset | grep -c 'comment "demo/' || true)"

step "done: namespaces removed"
