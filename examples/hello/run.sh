#!/usr/bin/env bash
# The README's main job: build berth, run the hello stack's container, take the project down.
# Installs what it needs (iptables, for the project's network) from Debian; downloads nothing
# else — the container runs from the host image, made from this machine's own /usr. As root.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ "$(id -u)" = 0 ] || { echo "run as root: bash examples/hello/run.sh" >&2; exit 1; }
if ! command -v iptables-restore >/dev/null && ! command -v nft >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends iptables >/dev/null
fi
cargo build --release --quiet
berth="target/release/berth -f examples/hello/compose.yaml"
trap '$berth down -t 0' EXIT
$berth run --rm -T hello
