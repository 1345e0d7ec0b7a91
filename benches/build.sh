#!/usr/bin/env bash
# berth's image builder against `podman build` (buildah) in one run, as root:
#   bash benches/build.sh [SAMPLES]        (default 5)
# Both build the same generated context and Dockerfile (below: a builder stage that COPYs 200
# small text files and one 2 MB file and RUNs a concatenation + sha256sum, and a final stage with
# ENV, WORKDIR, COPY --from, a late `COPY config/`, RUN adduser + chown, USER, CMD) on the base
# berth-test/busybox:latest (tests/fixtures/make-images.sh), loaded into both stores beforehand.
# Figures: the wall clock of the whole command, medians over SAMPLES; the tools alternate which
# goes first sample by sample:
#   cold:     `build --no-cache` (every step runs; the base image is local);
#   cached:   the same build again, nothing changed (every step from the cache);
#   changed:  config/app.conf (copied by the late `COPY config/`) rewritten, then built again
#             (the steps before that COPY from the cache; it and the RUN after it run).
# berth: `berth -f compose.yaml build [--no-cache] app` (service `app` with `build: .`); its RUN
# steps join the project's bridge network. podman: its own storage under the work directory
# (--root, --runroot, --tmpdir, --network-config-dir; overlay driver, cgroupfs, file events),
# `--pull=never`, layer caching on (the default), its default rootful network for RUN (a netavark
# bridge per RUN container). Before each podman cold build its images are removed and the base
# reloaded: a `--no-cache` build duplicates the chain of an earlier build, and buildah's cache
# lookup may then follow the older chain and miss the late COPY in the "cached" build.
# At the end the berth project is taken down, the mounts under the work directory (podman's
# working containers of an interrupted build) unmounted, the work directory removed, and netavark's
# iptables chains deleted if they were not there before. No traffic beyond the containers' bridges.
set -euo pipefail
cd "$(dirname "$0")/.."
samples=${1:-5}
[[ $samples =~ ^[1-9][0-9]*$ ]] || { echo "usage: $0 [SAMPLES]" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
export LC_ALL=C
# shellcheck source=benches/lib.sh
source benches/lib.sh
install_missing umoci skopeo busybox-static python3 iptables podman
build_with_images
work=$(mktemp -d /tmp/berth-build-bench.XXXXXX)
ctx=$work/bbuildbench
results=$work/results.tsv
berth=("${CARGO_TARGET_DIR:-target}/release/berth" --root "$work/berth-root")
podman=(podman --root "$work/podman-root" --runroot "$work/podman-runroot" --tmpdir "$work/podman-tmp"
  --network-config-dir "$work/podman-networks" --storage-driver overlay --cgroup-manager cgroupfs
  --events-backend file)
netavark_before=$(iptables-save 2>/dev/null | grep -c NETAVARK || true)

cleanup() {
  set +e
  "${berth[@]}" -f "$ctx/compose.yaml" down -t 0 >/dev/null 2>&1
  grep -F " $work/" /proc/self/mountinfo | cut -d' ' -f5 | sort -r | xargs -r -n1 umount -l
  rm -rf "$work"
  if [ "$netavark_before" = 0 ]; then   # netavark leaves its top-level chains behind
    iptables -D FORWARD -m comment --comment "netavark firewall plugin rules" -j NETAVARK_FORWARD
    iptables -t nat -D PREROUTING -m addrtype --dst-type LOCAL -j NETAVARK-HOSTPORT-DNAT
    iptables -t nat -D OUTPUT -m addrtype --dst-type LOCAL -j NETAVARK-HOSTPORT-DNAT
    iptables -t nat -D POSTROUTING -j NETAVARK-HOSTPORT-MASQ
    local table chain
    for table in filter nat; do
      for chain in $(iptables-save -t "$table" | sed -n 's/^:\(NETAVARK[^ ]*\) .*/\1/p'); do
        iptables -t "$table" -F "$chain"
      done
      for chain in $(iptables-save -t "$table" | sed -n 's/^:\(NETAVARK[^ ]*\) .*/\1/p'); do
        iptables -t "$table" -X "$chain"
      done
    done
  fi 2>/dev/null
}
trap cleanup EXIT

# --- the context -------------------------------------------------------------------------------
mkdir -p "$ctx/src" "$ctx/config"
for i in $(seq -w 1 200); do
  printf 'file %s\n%s\n' "$i" "$(seq -s ' ' "$((10#$i))" "$((10#$i + 40))")" > "$ctx/src/f$i.txt"
done
seq 1 290000 > "$ctx/src/big.dat"   # 2.0 MB
echo "generation=0" > "$ctx/config/app.conf"
cat > "$ctx/Dockerfile" <<'EOF'
FROM berth-test/busybox:latest AS builder
WORKDIR /src
COPY src/ ./
RUN mkdir -p /out && for f in *.txt; do cat "$f" >> /out/all.txt; done && sha256sum /out/all.txt > /out/sum
FROM berth-test/busybox:latest
ENV APP_HOME=/app
WORKDIR /app
COPY --from=builder /out/ ./
COPY config/ ./config/
RUN adduser -D -u 1001 runner 2>/dev/null || true; chown -R 1000:1000 /app
USER 1000
CMD ["sh", "-c", "cat /app/sum"]
EOF
cat > "$ctx/compose.yaml" <<'EOF'
name: bbuildbench
services:
  app:
    build: .
EOF

"${berth[@]}" load -i "$images/busybox.docker.tar" >/dev/null
"${podman[@]}" load -i "$images/busybox.docker.tar" >/dev/null 2>&1
"${podman[@]}" image exists docker.io/berth-test/busybox:latest

# build TOOL FIGURE [FLAG]: one timed build; appends "tool figure seconds steps" to $results.
build() {
  local tool=$1 figure=$2 out=$work/out.txt t0 t1 steps
  shift 2
  t0=$EPOCHREALTIME
  case $tool in
    berth) "${berth[@]}" -f "$ctx/compose.yaml" build "$@" app ;;
    podman) "${podman[@]}" build --pull=never "$@" -t bbuildbench-app:latest "$ctx" ;;
  esac > "$out" 2>&1 || { cat "$out" >&2; echo "build.sh: $tool build ($figure) failed" >&2; exit 1; }
  t1=$EPOCHREALTIME
  if [ "$tool" = berth ]; then
    steps=$(sed -n 's/.*: \([0-9]*\) layer steps run, \([0-9]*\) from the cache.*/\1 run, \2 from the cache/p' "$out" | tail -1)
  else
    steps="$(grep -c '^--> Using cache' "$out" || true) of $(grep -Ec 'STEP [0-9]+/[0-9]+: [A-Z]' "$out" | awk '{ print $1 - 2 }') from the cache"   # FROMs aside
  fi
  printf '%s\t%s\t%s\t%s\n' "$tool" "$figure" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')" "$steps" >> "$results"
}

for ((i = 0; i < samples; i++)); do
  if ((i % 2)); then order=(podman berth); else order=(berth podman); fi
  for tool in "${order[@]}"; do
    if [ "$tool" = podman ]; then   # see the header: a fresh store, only the base image in it
      "${podman[@]}" rmi -af >/dev/null 2>&1
      "${podman[@]}" load -i "$images/busybox.docker.tar" >/dev/null 2>&1
    fi
    build "$tool" cold --no-cache
    build "$tool" cached
    echo "generation=$i-$tool" > "$ctx/config/app.conf"
    build "$tool" changed
  done
done

echo "# bash benches/build.sh $samples — $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, berth $(git rev-parse --short HEAD)"
echo "# $("${berth[@]}" --version); $(podman --version), $(buildah --version | cut -d' ' -f1-3); medians of $samples"
python3 - "$results" <<'PY'
import collections, statistics, sys
times, steps = collections.defaultdict(list), collections.defaultdict(set)
for line in open(sys.argv[1]):
    tool, figure, seconds, counted = line.rstrip("\n").split("\t")
    times[tool, figure].append(float(seconds))
    steps[tool, figure].add(counted)
names = {"cold": "cold (`--no-cache`)", "cached": "cached (nothing changed)",
         "changed": "one file changed (late `COPY config/`)"}
print("| figure | berth | podman build | berth/podman |")
print("| --- | --- | --- | --- |")
for figure, name in names.items():
    b, p = statistics.median(times["berth", figure]), statistics.median(times["podman", figure])
    print(f"| {name} | {b:.2f} s | {p:.2f} s | {b / p:.2f} |")
print()
for figure in names:
    print(f"# {figure}: berth {' / '.join(sorted(steps['berth', figure]))} (layer steps);"
          f" podman {' / '.join(sorted(steps['podman', figure]))} (steps)")
PY
