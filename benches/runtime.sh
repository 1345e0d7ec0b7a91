#!/usr/bin/env bash
# create + start + wait + delete of a busybox `true` container, berth against crun in the same run:
#   berth run --rm -T t          (a compose service; berth loads the stack file too)
#   crun run --bundle B ID       (an OCI bundle of the same busybox rootfs, crun's default namespaces)
# The two alternate run by run (benches/interleave.py); prints medians, p10/p90 and the ratio
# berth/crun of the medians. Run as root:
#   bash benches/runtime.sh [RUNS]
#   bash benches/runtime.sh --vm [RUNS]   the same in the pure cgroup v2 test VM (tests/vm/bench.sh,
#                                         Debian's crun and kernel; under TCG only the ratio counts)
# PEER=unconfined times berth against itself with `security_opt: [seccomp=unconfined]` instead
# of crun: what the seccomp filter and the session keyring cost each start.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
if [ "${1:-}" = --vm ]; then
  cargo build --release --quiet
  BERTH_VM_BENCH=${2:-100} exec bash tests/vm/run.sh "$PWD/target/release/berth"
fi
runs=${1:-200}
# shellcheck source=benches/lib.sh
source benches/lib.sh
install_missing crun umoci skopeo busybox-static python3
# crun refuses a hybrid cgroup host whose v2 tree still offers a controller (hugetlb here): mount
# such controllers as v1 hierarchies, as ../shared/bench/setup.sh does.
# The mounts are undone at exit, so the machine is left as it was.
mounted=""
if [ -n "$(cat /sys/fs/cgroup/unified/cgroup.controllers 2>/dev/null)" ]; then
  for c in $(cat /sys/fs/cgroup/unified/cgroup.controllers); do
    if ! mountpoint -q "/sys/fs/cgroup/$c"; then
      mkdir -p "/sys/fs/cgroup/$c" && mount -t cgroup -o "$c" cgroup "/sys/fs/cgroup/$c"
      mounted="$mounted /sys/fs/cgroup/$c"
    fi
  done
fi
undo_mounts() { for m in $mounted; do umount "$m" && rmdir "$m"; done; }
trap undo_mounts EXIT
cargo build --release --quiet
images=target/bench-images
bash tests/fixtures/make-images.sh "$images"
work=$(mktemp -d /tmp/berth-bench.XXXXXX)
trap 'rm -rf "$work"; undo_mounts' EXIT
root="$work/root"
target/release/berth --root "$root" load -i "$images/busybox.docker.tar" >/dev/null

# The berth stack.
mkdir -p "$work/stack"
cat > "$work/stack/compose.yaml" <<'YAML'
services:
  t:
    image: berth-test/busybox:latest
    pull_policy: never
    command: ["true"]
    # crun's default spec gives the container a network namespace with only lo: so does this.
    network_mode: none
YAML

# The crun bundle: the same image unpacked by umoci, crun's default spec running `true`.
umoci unpack --image "$images/oci:busybox" "$work/bundle" >/dev/null
(cd "$work/bundle" && rm -f config.json && crun spec)
python3 - "$work/bundle/config.json" <<'PY'
import json, sys
path = sys.argv[1]
spec = json.load(open(path))
spec["process"]["args"] = ["true"]
spec["process"]["terminal"] = False
json.dump(spec, open(path, "w"), indent=2)
PY

berth_cmd="target/release/berth --root $root -f $work/stack/compose.yaml run --rm -T t"
crun_cmd="crun --cgroup-manager=cgroupfs run --bundle $work/bundle berth-bench-$$"
peer=crun
if [ "${PEER:-crun}" = unconfined ]; then
  mkdir -p "$work/unconfined"
  sed 's/    network_mode: none/    network_mode: none\n    security_opt: ["seccomp=unconfined"]/' \
    "$work/stack/compose.yaml" > "$work/unconfined/compose.yaml"
  peer=unconfined
  crun_cmd="target/release/berth --root $root -f $work/unconfined/compose.yaml run --rm -T t"
fi
$berth_cmd
$crun_cmd
# The release build and the unpacked image leave the disk's writeback queue full for tens of
# seconds; flush it so that neither side is timed against the kernel writing the build back.
sync
python3 benches/interleave.py "$runs" berth "$berth_cmd" "$peer" "$crun_cmd"
