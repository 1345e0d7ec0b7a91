#!/usr/bin/env bash
# Load and soak (issue 21, item 7), with berth's release binary on its own state root:
#   1. a CONTAINERS-container stack (CONTAINERS services, one container each, on one network)
#      goes `up -d` and `down` CYCLES times; after every cycle the leak check (berth-named links,
#      netns, iptables/nft rules, mounts, cgroups, supervisor processes, network records) must
#      equal what it was before the first; time of `up -d` and of `down` per cycle;
#   2. CRASHERS containers in a crash loop (`restart: always`, `exit 1`) for SOAK_SECS seconds:
#      the supervisor's RSS (VmRSS) and descriptor count (/proc/PID/fd), with its spawner's,
#      sampled every SAMPLE_SECS; after WARMUP_SECS they must stay within ±10% of the first
#      sample after warm-up; and every container's restart intervals (`Starts` in
#      `ps --format json`, gathered across the samples) against docker's back-off (moby
#      daemon/internal/restartmanager: 100 ms, doubled per restart, capped at 1 min, reset after
#      10 s of running): never early, and how late;
#   3. ENOSPC on a small tmpfs state root during pull, unpack, build and log writes: the
#      integration tests of tests/enospc.rs (run here, under the kernel-test lock).
# Usage, as root:
#   nice -n 5 bash benches/soak.sh            (CYCLES=10 CONTAINERS=200 CRASHERS=50 SOAK_SECS=300)
# Environment overrides: CYCLES CONTAINERS CRASHERS SOAK_SECS SAMPLE_SECS WARMUP_SECS SKIP_ENOSPC=1.
# It removes its projects and state root at the end; exit status 1 when a check fails.
set -euo pipefail
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
CYCLES=${CYCLES:-10}
CONTAINERS=${CONTAINERS:-200}
CRASHERS=${CRASHERS:-50}
SOAK_SECS=${SOAK_SECS:-300}
SAMPLE_SECS=${SAMPLE_SECS:-5}
WARMUP_SECS=${WARMUP_SECS:-60}
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
# shellcheck source=benches/lib.sh
source benches/lib.sh
build_with_images
berth=$repo/target/release/berth
work=$(mktemp -d /tmp/berth-soak.XXXXXX)
root=$work/root
failed=0
fail() { echo "FAIL: $*"; failed=1; }
cleanup() {
  for p in soakload soakcrash; do
    [ -f "$work/$p/compose.yaml" ] && "$berth" --root "$root" -f "$work/$p/compose.yaml" down -t 0 >/dev/null 2>&1 || true
  done
  rm -rf "$work"
}
trap cleanup EXIT
"$berth" --root "$root" load -i "$images/busybox.docker.tar" >/dev/null

# Kernel objects by the hundred: serialised with the other kernel tests of this machine.
exec 9>/tmp/berth-kernel-tests.lock
flock 9

# The leak check: every berth-named kernel object, berth's records and supervisors.
leaks() {
  {
    ip -o link show | grep -i berth | awk -F': ' '{print "link " $2}' || true
    ip netns list | grep -i berth | sed 's/^/netns /' || true
    iptables-save | grep -i berth | sed -E 's/ \[[0-9]+:[0-9]+\]$//; s/^/iptables /' || true
    if command -v nft >/dev/null; then nft list ruleset | grep -i berth | sed 's/^/nft /' || true; fi
    grep berth /proc/self/mountinfo | awk '{print "mount " $5}' || true
    find /sys/fs/cgroup -maxdepth 4 -iname '*berth*' | sed 's/^/cgroup /' || true
    pgrep -af __supervise | grep -F -- "$root" | sed 's/^[0-9]* /supervisor /' || true
    ls "$root/networks" "$root/containers" 2>/dev/null | grep -v '^\.lock$' | sed 's/^/record /' || true
  } | sort
}

ms() { date +%s%3N; }

# --- 1. up and down ----------------------------------------------------------------------------
mkdir -p "$work/soakload"
{
  echo "name: soakload"
  echo "services:"
  for i in $(seq 1 "$CONTAINERS"); do
    printf '  s%d:\n    image: berth-test/busybox:latest\n    pull_policy: never\n' "$i"
    printf '    command: ["sleep", "1000000"]\n    stop_signal: SIGKILL\n'
  done
} >"$work/soakload/compose.yaml"
baseline=$(leaks)
echo "== 1. $CONTAINERS containers, up -d and down, $CYCLES cycles"
printf '%-6s %10s %10s %8s\n' cycle "up -d (s)" "down (s)" leaks
ups=() downs=()
for c in $(seq 1 "$CYCLES"); do
  t0=$(ms)
  "$berth" --root "$root" -f "$work/soakload/compose.yaml" up -d >"$work/up.log" 2>&1 \
    || { fail "cycle $c: up -d failed"; tail -5 "$work/up.log"; }
  t1=$(ms)
  running=$("$berth" --root "$root" -f "$work/soakload/compose.yaml" ps -q | wc -l)
  [ "$running" = "$CONTAINERS" ] || fail "cycle $c: $running containers running, not $CONTAINERS"
  "$berth" --root "$root" -f "$work/soakload/compose.yaml" down -t 0 >"$work/down.log" 2>&1 \
    || { fail "cycle $c: down failed"; tail -5 "$work/down.log"; }
  t2=$(ms)
  now=$(leaks)
  left=$(comm -13 <(echo "$baseline") <(echo "$now") | grep -c . || true)
  [ "$left" = 0 ] || { fail "cycle $c leaked:"; comm -13 <(echo "$baseline") <(echo "$now") | head -20; }
  ups+=($((t1 - t0))) downs+=($((t2 - t1)))
  printf '%-6s %10.2f %10.2f %8s\n' "$c" "$(echo "($t1-$t0)/1000" | bc -l)" "$(echo "($t2-$t1)/1000" | bc -l)" "$left"
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)/1000}'; }
echo "median up -d $(median "${ups[@]}") s, median down $(median "${downs[@]}") s"

# --- 2. crash loop -----------------------------------------------------------------------------
mkdir -p "$work/soakcrash"
{
  echo "name: soakcrash"
  echo "services:"
  for i in $(seq 1 "$CRASHERS"); do
    printf '  c%d:\n    image: berth-test/busybox:latest\n    pull_policy: never\n' "$i"
    printf '    command: ["sh", "-c", "exit 1"]\n    restart: always\n'
  done
} >"$work/soakcrash/compose.yaml"
echo "== 2. $CRASHERS containers in a crash loop for ${SOAK_SECS}s (samples every ${SAMPLE_SECS}s)"
"$berth" --root "$root" -f "$work/soakcrash/compose.yaml" up -d >"$work/up.log" 2>&1 || { fail "crash loop: up -d"; cat "$work/up.log"; }
sup=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["pid"])' "$root/projects/soakcrash/supervisor.json")
# The spawner: the supervisor's first child running the same command line (a container being
# cloned is one too, for a moment, and comes later).
spawner=""
for child in $(cat /proc/"$sup"/task/*/children 2>/dev/null | tr ' ' '\n' | sort -n); do
  if cmp -s /proc/"$sup"/cmdline /proc/"$child"/cmdline; then spawner=$child; break; fi
done
start=$(date +%s)
: >"$work/samples" ; : >"$work/starts"
while [ $(($(date +%s) - start)) -lt "$SOAK_SECS" ]; do
  t=$(($(date +%s) - start))
  rss=$(awk '/^VmRSS/ {print $2}' /proc/"$sup"/status)
  fds=$(ls /proc/"$sup"/fd | wc -l)
  srss=0 sfds=0
  if [ -n "$spawner" ] && [ -d /proc/"$spawner" ]; then
    srss=$(awk '/^VmRSS/ {print $2}' /proc/"$spawner"/status)
    sfds=$(ls /proc/"$spawner"/fd | wc -l)
  fi
  echo "$t $rss $fds $srss $sfds" >>"$work/samples"
  "$berth" --root "$root" -f "$work/soakcrash/compose.yaml" ps -a --format json >>"$work/starts" 2>/dev/null || true
  echo >>"$work/starts"
  sleep "$SAMPLE_SECS"
done
python3 - "$work/samples" "$work/starts" "$WARMUP_SECS" <<'EOF' || failed=1
import json, sys, statistics
samples = [list(map(int, l.split())) for l in open(sys.argv[1]) if l.strip()]
warmup = int(sys.argv[3])
after = [s for s in samples if s[0] >= warmup]
ok = True
print(f"{'t (s)':>6} {'RSS (KiB)':>10} {'fds':>5} {'spawner RSS':>12} {'spawner fds':>12}")
for s in samples[:: max(1, len(samples) // 20)]:
    print(f"{s[0]:>6} {s[1]:>10} {s[2]:>5} {s[3]:>12} {s[4]:>12}")
for col, name in [(1, "supervisor RSS"), (2, "supervisor fds"), (3, "spawner RSS"), (4, "spawner fds")]:
    base = after[0][col]
    lo, hi = min(s[col] for s in after), max(s[col] for s in after)
    dev = max(abs(lo - base), abs(hi - base)) / base * 100 if base else 0.0
    verdict = "flat" if dev <= 10 else "NOT FLAT"
    if dev > 10:
        ok = False
    print(f"{name}: after {warmup}s warm-up first {base}, min {lo}, max {hi}, last {after[-1][col]}: ±{dev:.1f}% ({verdict})")
# Restart intervals: every start time seen, per container.
starts = {}
for block in open(sys.argv[2]).read().split("\n\n"):
    for line in block.splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            items = json.loads(line)
        except ValueError:
            continue
        for c in items if isinstance(items, list) else [items]:
            starts.setdefault(c["Name"], set()).update(c.get("Starts") or [])
def docker_delay(k):  # the delay before restart k (1-based), in seconds
    return min(0.1 * 2 ** (k - 1), 60.0)
by_restart = {}
early = []
for name, seen in starts.items():
    seen = sorted(seen)
    for k in range(1, len(seen)):
        gap = (seen[k] - seen[k - 1]) / 1e9
        by_restart.setdefault(k, []).append(gap)
        if gap < docker_delay(k) - 0.005:
            early.append((name, k, gap))
print(f"{'restart':>7} {'docker delay (s)':>16} {'containers':>10} {'median gap (s)':>14} {'max gap (s)':>11} {'median late (s)':>15}")
for k in sorted(by_restart):
    gaps = by_restart[k]
    d = docker_delay(k)
    print(f"{k:>7} {d:>16.1f} {len(gaps):>10} {statistics.median(gaps):>14.3f} {max(gaps):>11.3f} {statistics.median(gaps) - d:>15.3f}")
if early:
    ok = False
    print(f"EARLY restarts (before docker's delay): {early[:10]}")
else:
    print("no restart came before docker's delay")
sys.exit(0 if ok else 1)
EOF
"$berth" --root "$root" -f "$work/soakcrash/compose.yaml" down -t 0 >/dev/null 2>&1 || fail "crash loop: down"
now=$(leaks)
comm -13 <(echo "$baseline") <(echo "$now") | grep -q . && { fail "crash loop leaked:"; comm -13 <(echo "$baseline") <(echo "$now"); }

# --- 3. ENOSPC ---------------------------------------------------------------------------------
flock -u 9
if [ "${SKIP_ENOSPC:-0}" != 1 ]; then
  echo "== 3. ENOSPC on a small tmpfs state root (tests/enospc.rs, and the pull case in tests/pull.rs)"
  cargo test --quiet --test enospc --test pull --no-run >/dev/null 2>&1
  for t in enospc "pull a_full_disk"; do
    # shellcheck disable=SC2086
    set -- $t
    out=$(flock /tmp/berth-kernel-tests.lock cargo test --quiet --test "$1" -- --nocapture --test-threads=1 ${2:-} 2>&1) \
      || fail "tests/$1.rs"
    echo "$out" | grep -E "^(test |ENOSPC|test result)|panicked" || true
  done
fi
[ "$failed" = 0 ] && echo "soak: all checks held" || echo "soak: FAILED"
exit "$failed"
