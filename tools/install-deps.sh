#!/usr/bin/env bash
# Installs what building, testing and the demo need on Debian 12, as root.
# Skips apt entirely when everything is already there (CI reruns are quick).
set -euo pipefail

# Installed with --no-install-recommends, so every package a step needs is named
# here, even when another package merely recommends it (checked with
# `apt-cache depends`; ../shared/tools/fresh-debian-check.sh proves the list).
packages=(
  protobuf-compiler            # protoc, for etcd-client's build script
  libprotobuf-dev              # google/protobuf/*.proto that etcd-client's protos import (only recommended by protobuf-compiler)
  etcd-server                  # etcd, started by the test fixtures on loopback
  etcd-client                  # etcdctl, for poking at etcd by hand
  nftables                     # nft, our firewall/NAT backend
  netbase                      # /etc/protocols and /etc/services, which nft resolves names with (only recommended by nftables)
  procps                       # pgrep, for test.sh's check that no etcd is left running
  iproute2                     # ip, for namespaces in tests and the demo
  iputils-ping                 # ping, for the demo and datapath tests
  busybox                      # httpd and wget, for the demo's web page
  iperf3                       # pod-to-pod TCP throughput across the overlay, in cni-bench
  musl-tools                   # musl-gcc: ring (TLS of etcd-ipam, overlayd, the CLIs) in the musl release build
  containernetworking-plugins  # the reference Go plugins, for differential tests and benchmarks
  ca-certificates
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "install-deps: cargo not found: install a Rust toolchain >= 1.85 (rustup), then rerun" >&2
  exit 1
fi
# The release build (tools/build-release.sh) prefers musl; best effort: the
# tests and the demo don't need it, and without it that build uses glibc.
musl="$(rustc -vV | sed -n 's/^host: //p' | sed 's/-gnu$/-musl/')"
if command -v rustup >/dev/null 2>&1 && ! rustup target list --installed 2>/dev/null | grep -qx "$musl"; then
  rustup target add "$musl" >/dev/null 2>&1 \
    || echo "install-deps: could not add the $musl target; release builds will link glibc" >&2
fi
if [ "$(id -u)" != 0 ]; then
  echo "install-deps: run as root: the tests create network namespaces" >&2
  exit 1
fi
