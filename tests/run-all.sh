#!/usr/bin/env bash
# berth's whole test suite, as CI runs it: lints, unit and integration tests, then a check that
# the machine is as clean as before. Installs what it needs; run as root for the kernel tests.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -f ../shared/corpus/manifest.json ]; then
  echo "error: ../shared (the compose corpus and research) must sit beside this repository" >&2
  exit 1
fi

if [ "$(id -u)" != 0 ]; then
  echo "error: the suite creates namespaces, mounts, device nodes and a local registry: run it as root" >&2
  exit 1
fi

# Debian packages the tests use: image tools (test images are built from busybox-static with
# umoci and skopeo, never downloaded), a registry that listens on 127.0.0.1 only, the packet
# filters berth drives (iptables, and nftables for the nft backend's tests), iproute2 for the
# tests' own "outside" namespaces, python3 (a UDP server run from the host image), and
# python3-venv (convert.rs installs kubernetes-validate from PyPI into a virtualenv).
need=""
# qemu-system-x86, jq and binutils build and boot the pure cgroup v2 VM (tests/v2_vm.rs), whose
# kernel is Debian's linux-image-amd64, downloaded (not installed) by tests/vm/build.sh.
for pkg in umoci skopeo docker-registry busybox-static iptables nftables iproute2 python3 python3-venv \
  qemu-system-x86 jq binutils; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need="$need $pkg"
done
if [ -n "$need" ]; then
  echo "== apt-get install$need"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need >/dev/null
fi

# The policy is read whole before grep looks at it: `grep -q` leaving a pipe early would
# SIGPIPE apt-cache, which pipefail reports as a failure.
kernel_candidate() { policy=$(apt-cache policy linux-image-amd64 2>/dev/null || true); grep -q 'Candidate: [0-9]' <<<"$policy"; }
if ! kernel_candidate; then
  apt-get update -qq
  kernel_candidate || { echo "error: apt cannot resolve linux-image-amd64 (the v2 VM's kernel)" >&2; exit 1; }
fi

# Rust components the lint steps need (rustup ships them; no-ops when present).
if command -v rustup >/dev/null; then
  rustup component add rustfmt clippy >/dev/null 2>&1 || true
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets --locked -- -D warnings

echo "== cargo test"
cargo test --all-targets --locked -- --nocapture 2>&1 | tee target/berth-test.log
# Doc tests are not part of --all-targets.
cargo test --doc --locked

echo "== leak check: nothing named berth may be left behind"
leaks=""
leaks+=$(ip -o link show 2>/dev/null | grep -i berth || true)
leaks+=$(ip netns list 2>/dev/null | grep -i berth || true)
leaks+=$(grep -i berth /proc/self/mountinfo || true)
leaks+=$(find /sys/fs/cgroup -maxdepth 4 -type d -iname '*berth*' 2>/dev/null || true)
if command -v nft >/dev/null; then leaks+=$(nft list ruleset 2>/dev/null | grep -i berth || true); fi
if command -v iptables-save >/dev/null; then leaks+=$(iptables-save 2>/dev/null | grep -i berth || true); fi
leaks+=$(pgrep -af '__supervise' | grep -v pgrep || true)
leaks+=$(pgrep -af 'berth-' | grep -v -e pgrep -e run-all.sh || true)
if [ -n "$leaks" ]; then
  echo "error: the test suite left kernel objects behind:" >&2
  echo "$leaks" >&2
  exit 1
fi
echo "clean"
