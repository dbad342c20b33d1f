#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting, lints, every unit and
# integration test (real namespaces, real etcd), then a check that nothing was
# left behind on the machine. Run as root on Debian 12.
set -euo pipefail
cd "$(dirname "$0")/.."

tools/install-deps.sh

# What the machine looks like before: the suite must leave it exactly so.
snapshot() {
  { ip netns list; ip -br link | awk '{print $1}'; nft list tables 2>/dev/null; } | sort
}
before=$(snapshot)

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# Integration tests of one crate run the binaries of others (cnitool drives
# loopback), so every binary is built first.
cargo build --workspace --bins --locked
cargo test --workspace --locked

after=$(snapshot)
if [ "$before" != "$after" ]; then
  echo "test.sh: the suite left state behind on the machine:" >&2
  diff <(echo "$before") <(echo "$after") >&2 || true
  exit 1
fi
if pgrep -x etcd >/dev/null; then
  echo "test.sh: an etcd process is still running after the suite:" >&2
  pgrep -a -x etcd >&2
  exit 1
fi
echo "test.sh: all checks passed; no namespace, link, nft table or etcd left behind"
