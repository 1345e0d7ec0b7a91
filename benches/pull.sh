#!/usr/bin/env bash
# Side by side, in one run: `berth pull` of a multi-layer image from a local registry against
# `skopeo copy` (and `podman pull`, when installed) of the same image, and `berth load` of
# docker-archive files against `skopeo copy docker-archive:… oci:…`. Prints each median and the
# ratio berth/peer (below 1: berth is faster). Not run by CI.
#
#   bash benches/pull.sh            RUNS=20 LAYERS=5 LAYER_MB=4 bash benches/pull.sh
#
# Needs root (berth unpacks layers with their owners), docker-registry, skopeo, umoci, curl,
# python3 and busybox-static; installs hyperfine with apt-get when it is missing. Everything it
# makes lives in one /tmp/berth-bench.* directory, removed at the end with the registry stopped.
#
# Note what is compared: `berth pull` downloads, verifies AND unpacks every layer into its
# store; `skopeo copy … oci:` only downloads and verifies (it unpacks nothing); `podman pull`
# downloads and unpacks, like berth.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-10}
LAYERS=${LAYERS:-5}
LAYER_MB=${LAYER_MB:-4}

for tool in docker-registry skopeo umoci curl python3; do
  command -v "$tool" >/dev/null || { echo "pull.sh: $tool is missing (apt-get install docker-registry skopeo umoci curl python3)" >&2; exit 1; }
done
if ! command -v hyperfine >/dev/null; then
  apt-get install -y hyperfine >/dev/null
fi

echo "== building berth (release) and the fixture images"
cargo build --release --quiet
berth=$PWD/target/release/berth
fixtures=$PWD/target/tmp/berth-test-images   # shared with the tests
bash tests/fixtures/make-images.sh "$fixtures"

work=$(mktemp -d /tmp/berth-bench.XXXXXX)
registry_pid=""
podman_root="$work/podman-root"
cleanup() {
  if [ -n "$registry_pid" ]; then kill "$registry_pid" 2>/dev/null || true; wait "$registry_pid" 2>/dev/null || true; fi
  if command -v podman >/dev/null && [ -d "$podman_root" ]; then
    podman --root "$podman_root" --runroot "$work/podman-run" rmi -a -f >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

echo "== making a $LAYERS-layer image (busybox + $LAYERS layers of ~$LAYER_MB MB)"
layout="$work/layout"
cp -a "$fixtures/oci" "$layout"
umoci tag --image "$layout:busybox" multi
for i in $(seq 1 "$LAYERS"); do
  dir="$work/layer$i"
  mkdir -p "$dir/opt/bench$i"
  # Half incompressible, half text-like (base64 of random bytes compresses to ~75%): a mix
  # close to real binaries and data.
  files=$((LAYER_MB * 4))
  for f in $(seq 1 "$files"); do
    if [ $((f % 2)) -eq 0 ]; then
      head -c 262144 /dev/urandom > "$dir/opt/bench$i/blob$f.bin"
    else
      head -c 196608 /dev/urandom | base64 > "$dir/opt/bench$i/text$f.txt"
    fi
  done
  tar -C "$dir" --numeric-owner --owner=0 --group=0 -cf "$work/layer$i.tar" .
  umoci raw add-layer --image "$layout:multi" "$work/layer$i.tar"
  rm -rf "$dir" "$work/layer$i.tar"
done
umoci gc --layout "$layout"
skopeo copy --quiet "oci:$layout:multi" "docker-archive:$work/multi.docker.tar:bench/multi:latest"

echo "== starting docker-registry on 127.0.0.1"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p "$work/registry"
cat > "$work/registry.yml" <<EOF
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $work/registry
http:
  addr: 127.0.0.1:$port
EOF
docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
registry_pid=$!
for _ in $(seq 1 200); do
  if curl -sf -o /dev/null "http://127.0.0.1:$port/v2/"; then break; fi
  kill -0 "$registry_pid" 2>/dev/null || { cat "$work/registry.log" >&2; exit 1; }
  sleep 0.05
done
curl -sf -o /dev/null "http://127.0.0.1:$port/v2/" || { echo "pull.sh: the registry does not answer" >&2; exit 1; }
image="127.0.0.1:$port/bench/multi:latest"
skopeo copy --quiet --dest-tls-verify=false "oci:$layout:multi" "docker://$image"
size=$(du -sh "$work/registry" | cut -f1)
echo "   $image: $((LAYERS + 1)) layers, $size in the registry"

echo "== pull: berth vs skopeo$(command -v podman >/dev/null && echo ' vs podman')"
pull_args=(
  -n "berth pull" --prepare "rm -rf $work/berth-root" "$berth --root $work/berth-root pull -q $image"
  -n "skopeo copy" --prepare "rm -rf $work/skopeo-out" "skopeo copy --quiet --src-tls-verify=false docker://$image oci:$work/skopeo-out:multi"
)
if command -v podman >/dev/null; then
  podman_cmd="podman --root $podman_root --runroot $work/podman-run"
  pull_args+=(-n "podman pull" --prepare "$podman_cmd rmi -a -f >/dev/null 2>&1 || true" "$podman_cmd pull -q --tls-verify=false $image")
else
  echo "   (podman is not installed: compared with skopeo only)"
fi
hyperfine --style basic --runs "$RUNS" --warmup 1 --export-json "$work/pull.json" "${pull_args[@]}"

echo "== load: berth vs skopeo$(command -v podman >/dev/null && echo ' vs podman')"
# skopeo copies blobs and unpacks nothing; podman load, like berth load, also unpacks the layers.
load_args=(
  -n "berth load busybox" --prepare "rm -rf $work/load-root" "$berth --root $work/load-root load -q -i $fixtures/busybox.docker.tar"
  -n "skopeo busybox" --prepare "rm -rf $work/load-out" "skopeo copy --quiet docker-archive:$fixtures/busybox.docker.tar oci:$work/load-out:busybox"
  -n "berth load multi" --prepare "rm -rf $work/load-root" "$berth --root $work/load-root load -q -i $work/multi.docker.tar"
  -n "skopeo multi" --prepare "rm -rf $work/load-out" "skopeo copy --quiet docker-archive:$work/multi.docker.tar oci:$work/load-out:multi"
)
if command -v podman >/dev/null; then
  load_args+=(
    -n "podman busybox" --prepare "$podman_cmd rmi -a -f >/dev/null 2>&1 || true" "$podman_cmd load -q -i $fixtures/busybox.docker.tar"
    -n "podman multi" --prepare "$podman_cmd rmi -a -f >/dev/null 2>&1 || true" "$podman_cmd load -q -i $work/multi.docker.tar"
  )
fi
hyperfine --style basic --runs "$RUNS" --warmup 1 --export-json "$work/load.json" "${load_args[@]}"

echo "== medians (runs: $RUNS)"
python3 - "$work/pull.json" "$work/load.json" <<'EOF'
import json, sys
def medians(path):
    return {r["command"]: r["median"] for r in json.load(open(path))["results"]}
pull, load = medians(sys.argv[1]), medians(sys.argv[2])
rows = []
for peer in ("skopeo copy", "podman pull"):
    if peer in pull:
        rows.append(("pull multi-layer image", "berth pull", peer, pull))
for image in ("busybox", "multi"):
    for peer in ("skopeo", "podman"):
        if f"{peer} {image}" in load:
            rows.append((f"load {image}.docker.tar", f"berth load {image}", f"{peer} {image}", load))
print(f"{'what':<26} {'berth':>10} {'peer':>10}  {'peer name':<12} {'berth/peer':>10}")
for what, ours, peer, table in rows:
    b, p = table[ours], table[peer]
    print(f"{what:<26} {b * 1000:>8.1f}ms {p * 1000:>8.1f}ms  {peer.split()[0]:<12} {b / p:>10.2f}")
EOF
