#!/usr/bin/env bash
# Release build of every binary, statically linked (static-pie): a plugin is a
# one-shot process, and without the dynamic loader it starts ~15% faster with
# ~30% less memory (measured in BENCHMARKS.md). The explicit --target keeps
# proc-macros (built for the host) dynamically linked, as they must be.
# Binaries land in target/<host triple>/release/.
set -euo pipefail
cd "$(dirname "$0")/.."
triple=$(rustc -vV | sed -n 's/^host: //p')
RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" \
  cargo build --release --locked --workspace --bins --target "$triple"
echo "build-release: binaries in ${CARGO_TARGET_DIR:-target}/$triple/release"
