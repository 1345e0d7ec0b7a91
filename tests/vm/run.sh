#!/usr/bin/env bash
# Boots the pure cgroup v2 test VM (tests/vm/build.sh) under qemu and runs the v2 suite in it.
# Exits 0 only when the guest's summary says every check passed; non-zero on any failed check,
# a missing summary (guest crash), or the timeout (with the console's tail).
#
# Usage: tests/vm/run.sh [BERTH_BINARY]
# Environment: BERTH_VM_ACCEL=auto|tcg|kvm (auto: KVM only if a quick probe boots, since nested
#   KVM hangs on some hosts), BERTH_VM_TIMEOUT seconds (default 1500), BERTH_VM_SMP (default 2),
#   BERTH_VM_MEM MiB (default 1536), BERTH_VM_ONLY=REGEX runs only the matching checks (for
#   debugging; skipped checks make the run fail), BERTH_VM_BENCH=RUNS runs the benchmark
#   (tests/vm/bench.sh: berth against crun) instead of the suite. The console log is
#   target/vm/console.log.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
die() { echo "vm/run.sh: $*" >&2; exit 2; }
command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 is missing (apt-get install qemu-system-x86)"

out=$(bash "$repo/tests/vm/build.sh" "$@" | tail -n 1)
[ -f "$out/initramfs.img" ] || die "build.sh produced no initramfs"
log=$repo/target/vm/console.log
timeout_s=${BERTH_VM_TIMEOUT:-1500}

# qemu_boot ACCEL SECONDS LOG EXTRA-CMDLINE
qemu_boot() {
  local accel=$1 seconds=$2 file=$3 extra=$4
  rm -f "$file"
  # nice: the machine is shared; the guest's timing matters to no check.
  nice -n 10 timeout --kill-after=10 "$seconds" qemu-system-x86_64 \
    -accel "$accel" -cpu max -smp "${BERTH_VM_SMP:-2}" -m "${BERTH_VM_MEM:-1536}" \
    -kernel "$out/vmlinuz" -initrd "$out/initramfs.img" \
    -append "console=ttyS0 panic=-1 quiet loglevel=3 $extra" \
    -display none -monitor none -serial "file:$file" -no-reboot -nodefaults \
    </dev/null >/dev/null 2>"$file.stderr"
}

accel=${BERTH_VM_ACCEL:-auto}
if [ "$accel" = auto ]; then
  accel=tcg
  if [ -w /dev/kvm ]; then
    if qemu_boot kvm 30 "$log.probe" berth.probe=1 && grep -q BERTH-VM-PROBE "$log.probe"; then
      accel=kvm
    else
      echo "vm/run.sh: KVM did not boot the VM within 30 s (nested KVM hangs on some hosts); using TCG"
    fi
  fi
fi

echo "vm/run.sh: booting $(basename "$out") with $accel (timeout ${timeout_s}s), console in $log"
start=$(date +%s)
status=0
extra="${BERTH_VM_ONLY:+berth.only=$BERTH_VM_ONLY} ${BERTH_VM_BENCH:+berth.bench=$BERTH_VM_BENCH}"
qemu_boot "$accel" "$timeout_s" "$log" "$extra" || status=$?
took=$(( $(date +%s) - start ))
grep -a '^BERTH-VM' "$log" || true
if [ -n "${BERTH_VM_BENCH:-}" ]; then
  echo "vm/run.sh: benchmark in ${took}s ($accel; under TCG only the ratio means anything)"
  grep -aq '^BERTH-VM-BENCH-DONE' "$log" || { tail -n 40 "$log" >&2; exit 1; }
  exit 0
fi
if [ "$status" = 124 ] || [ "$status" = 137 ]; then
  echo "vm/run.sh: TIMEOUT after ${took}s; the console's last lines:" >&2
  tail -n 60 "$log" >&2
  exit 1
fi
if grep -aq 'soft lockup' "$log"; then
  echo "vm/run.sh: the guest kernel reported a soft lockup:" >&2
  grep -a -B2 -A20 'soft lockup' "$log" | head -n 80 >&2
fi
summary=$(grep -a '^BERTH-VM-SUMMARY' "$log" | tail -n 1 | tr -d '\r' || true)
if [ -z "$summary" ]; then
  echo "vm/run.sh: no summary from the guest (qemu status $status, ${took}s); the console's last lines:" >&2
  tail -n 60 "$log" >&2
  cat "$log.stderr" >&2 || true
  exit 1
fi
echo "vm/run.sh: $summary in ${took}s ($accel)"
case "$summary" in
  *" fail=0 skip=0") exit 0 ;;
  *) exit 1 ;;
esac
