#!/usr/bin/env bash
# Network setup per container, and the whole `up -d`, measured in one run:
#   up -d of N idle busybox services on the project's default network (bridge, IPAM lease,
#   veth pair made in the container's namespace, address, routes, hairpin, DNS record), against
#   up -d of the same N services with `network_mode: none` (a network namespace with lo only).
# Each round times `up -d` of both stacks (in random order) and takes each down again untimed.
# The per-container network cost is the difference of the medians divided by N; the network's
# own creation (bridge, firewall rules) is part of the first figure. Run as root:
#   bash benches/network.sh [ROUNDS] [N...]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-20}
shift || true
sizes=${*:-1 10}
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
# shellcheck source=benches/lib.sh
source benches/lib.sh
install_missing umoci skopeo busybox-static python3 iptables
build_with_images
work=$(mktemp -d /tmp/berth-bench.XXXXXX)
root="$work/root"
berth="target/release/berth --root $root"
cleanup() {
  for d in "$work"/*/; do [ -f "$d/compose.yaml" ] && $berth -f "$d/compose.yaml" down -t 0 >/dev/null 2>&1 || true; done
  rm -rf "$work"
}
trap cleanup EXIT
$berth load -i "$images/busybox.docker.tar" >/dev/null

stack() { # NAME N EXTRA
  mkdir -p "$work/$1"
  {
    echo "name: $1"
    echo "services:"
    for i in $(seq 1 "$2"); do
      printf '  s%s:\n    image: berth-test/busybox:latest\n    pull_policy: never\n    command: ["sleep", "1000000"]\n' "$i"
      if [ -n "$3" ]; then printf "    %s\n" "$3"; fi
    done
  } > "$work/$1/compose.yaml"
}

sync
for n in $sizes; do
  stack "bnet$n" "$n" ""
  stack "bnone$n" "$n" "network_mode: none"
  python3 - "$rounds" "$n" "$berth" "$work/bnet$n/compose.yaml" "$work/bnone$n/compose.yaml" <<'PY'
import random, shlex, statistics, subprocess, sys, time
rounds, n, berth = int(sys.argv[1]), int(sys.argv[2]), shlex.split(sys.argv[3])
stacks = {"network": sys.argv[4], "none": sys.argv[5]}
def up_down(path):
    started = time.perf_counter()
    subprocess.run(berth + ["-f", path, "up", "-d"], check=True, stdout=subprocess.DEVNULL)
    elapsed = time.perf_counter() - started
    subprocess.run(berth + ["-f", path, "down", "-t", "0"], check=True, stdout=subprocess.DEVNULL)
    return elapsed
for path in stacks.values():
    up_down(path)
times = {name: [] for name in stacks}
for _ in range(rounds):
    order = list(stacks)
    random.shuffle(order)
    for name in order:
        times[name].append(up_down(stacks[name]))
med = {k: statistics.median(v) * 1000 for k, v in times.items()}
print(f"N={n}: up -d with the default network {med['network']:.1f} ms, with network_mode none {med['none']:.1f} ms; "
      f"network per container {(med['network'] - med['none']) / n:.2f} ms ({rounds} rounds)")
PY
done
