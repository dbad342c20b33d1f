#!/usr/bin/env bash
# The demo: builds the suite and gives a throwaway container namespace its
# loopback through cnitool, exactly as a runtime would, then tears it down.
# Everything happens in namespaces made here; the machine's network is untouched.
set -euo pipefail
cd "$(dirname "$0")/.."

tools/install-deps.sh
cargo build --workspace --bins --locked
bin=$PWD/target/debug

work=$(mktemp -d /tmp/cni-demo.XXXXXX)
host=cni-demo-host-$$
ctr=cni-demo-ctr-$$
cleanup() {
  ip netns del "$ctr" 2>/dev/null || true
  ip netns del "$host" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

ip netns add "$host"
ip -n "$host" link set lo up
ip netns add "$ctr"

mkdir -p "$work/net.d"
cat > "$work/net.d/10-demo.conflist" <<JSON
{
  "cniVersion": "1.1.0",
  "name": "demo",
  "plugins": [
    { "type": "loopback" }
  ]
}
JSON

# cnitool runs in the throwaway host namespace, as a runtime would on a node.
cnitool() {
  ip netns exec "$host" env NETCONFPATH="$work/net.d" CNI_PATH="$bin" \
    CNI_CACHE_DIR="$work/cache" "$bin/cnitool" "$@"
}

step "container namespace before ADD: lo is down"
ip -n "$ctr" -br addr show lo

step "cnitool add demo /run/netns/$ctr"
cnitool add demo "/run/netns/$ctr"

step "after ADD: lo is up"
ip -n "$ctr" -br addr show lo
ip netns exec "$ctr" ping -c1 -W1 127.0.0.1 | head -2

step "the result cache libcni would write"
ls -l "$work/cache/results/"

step "cnitool check demo /run/netns/$ctr"
cnitool check demo "/run/netns/$ctr" && echo "CHECK passed"

step "cnitool del demo /run/netns/$ctr"
cnitool del demo "/run/netns/$ctr" && echo "DEL done"
ip -n "$ctr" -br addr show lo
ls "$work/cache/results/" | wc -l | xargs echo "cache entries left:"

step "done: namespaces removed"
