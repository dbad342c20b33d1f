#!/usr/bin/env bash
# Release build of every binary, statically linked (static-pie): a plugin is a
# one-shot process, and without the dynamic loader it starts faster with less
# memory (measured in BENCHMARKS.md).
#
# With the x86_64-unknown-linux-musl target installed (`rustup target add
# x86_64-unknown-linux-musl`; tools/install-deps.sh tries) the binaries are
# built against musl: no glibc start-up CPU probing (CPUID traps in VMs; the
# plugin process starts ~45 % faster) and ~30 % less peak RSS. Without it,
# glibc linked statically (`+crt-static`; the explicit --target keeps
# proc-macros, built for the host, dynamically linked, as they must be).
#
# Binaries land in target/<triple>/release/; target/release-static points
# there.
set -euo pipefail
cd "$(dirname "$0")/.."
host=$(rustc -vV | sed -n 's/^host: //p')
musl="${host%-gnu}-musl"
if [ "${CNI_RS_GLIBC:-0}" != 1 ] && rustup target list --installed 2>/dev/null | grep -qx "$musl"; then
  triple=$musl
  cargo build --release --locked --workspace --bins --target "$triple"
else
  triple=$host
  RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" \
    cargo build --release --locked --workspace --bins --target "$triple"
fi
out=${CARGO_TARGET_DIR:-target}
ln -sfn "$triple/release" "$out/release-static"
echo "build-release: binaries in $out/$triple/release (also $out/release-static)"
