#!/usr/bin/env bash
# Runs the fuzz targets: `fuzz/run.sh [SECONDS] [TARGET...]` (default 600 s each; targets:
# load dockerfile dns unpack control).
# JOBS=2 runs two targets at once (the default is one); the fuzzers run under `nice -n 10`.
# NO_BUILD=1 uses the binaries already in fuzz/target as they are.
#
# Each target starts from its checked-in corpus (fuzz/corpus/<target>) plus fresh seeds
# (fuzz/seeds.py: test fixtures, examples, the shared compose corpus, hand-made DNS queries and
# hostile layers), fuzzes in fuzz/work/<target>, and libFuzzer's set-cover merge over edges only
# (-use_counters=0: a far smaller cut than the -merge=1 of `cargo fuzz cmin`, with the same
# edges, which is what the replay test needs) minimises it into fuzz/work/<target>.min. Only
# when every target is done are the minimised sets copied to fuzz/corpus/<target>: the corpus is
# package content, and a change to it could make cargo rebuild berth under a target still to run. Logs and a summary line per
# target go to fuzz/logs/. Crashes land in fuzz/artifacts/<target>/ and make the exit non-zero.
# cargo-fuzz needs nightly-only rustc flags; on the stable toolchain RUSTC_BOOTSTRAP=1 allows them.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-600}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(load dockerfile dns unpack control)
jobs=${JOBS:-1}
export RUSTC_BOOTSTRAP=1
if [ "${NO_BUILD:-0}" != 1 ]; then
  command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
  cargo fuzz build --release
fi
bin=target/x86_64-unknown-linux-gnu/release
# As cargo fuzz run sets it: Rust's duplicated generic symbols are not ODR violations.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_odr_violation=0}

# The unpack target's sandboxes live on tmpfs (fast, and removed here even after a crash).
BERTH_FUZZ_TMP=$(mktemp -d /dev/shm/berth-fuzz.XXXXXX)
export BERTH_FUZZ_TMP
trap 'rm -rf "$BERTH_FUZZ_TMP"' EXIT

python3 seeds.py >/dev/null
mkdir -p logs

max_len() {
  case $1 in
    dns) echo 4096 ;;
    dockerfile | control) echo 16384 ;;
    *) echo 65536 ;;
  esac
}

run_one() {
  local t=$1 log=logs/$1.log
  rm -rf "work/$t" "work/$t.min"
  mkdir -p "work/$t" "work/$t.min" "corpus/$t" "artifacts/$t"
  cp -r "corpus/$t/." "seeds/$t/." "work/$t/" 2>/dev/null || true
  if [ "$t" = load ]; then
    # The shared compose corpus sits beside the main checkout (../../shared) or beside the
    # worktrees' directory (../../../shared).
    for dir in ../examples ../../shared/corpus ../../../shared/corpus; do
      [ -d "$dir" ] || continue
      find "$dir" -name '*.y*ml' -size -64k | while read -r f; do
        cp "$f" "work/load/$(sha256sum "$f" | cut -c1-16)"
      done
    done
  fi
  local seeds status=0 len
  seeds=$(find "work/$t" -type f | wc -l)
  len=$(max_len "$t")
  touch "$log.start"
  nice -n 10 "$bin/$t" -artifact_prefix="artifacts/$t/" -max_total_time="$seconds" -rss_limit_mb=2048 \
    -timeout=10 -max_len="$len" -print_final_stats=1 "work/$t" >"$log" 2>&1 || status=$?
  # The last status line: `#RUNS DONE cov: N ft: N corp: N/SIZE exec/s: N rss: N`.
  local done_line runs eps crashes
  done_line=$(grep -E '^#[0-9]+\s+(DONE|pulse|NEW|REDUCE)' "$log" | tail -1 || true)
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  eps=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  nice -n 10 "$bin/$t" -set_cover_merge=1 -use_counters=0 -rss_limit_mb=2048 -timeout=10 -max_len="$len" "work/$t.min" "work/$t" \
    >"logs/$t.merge.log" 2>&1 || true
  crashes=$(find "artifacts/$t" -type f -newer "$log.start" | wc -l)
  printf '%s: %ss exit %s, runs %s, exec/s %s, seeds+corpus in %s, corpus out (merged) %s files %s, new crash/timeout/oom artifacts %s | %s\n' \
    "$t" "$seconds" "$status" "${runs:-?}" "${eps:-?}" "$seeds" "$(find "work/$t.min" -type f | wc -l)" \
    "$(du -sh "work/$t.min" | cut -f1)" "$crashes" "$done_line" | tee "logs/$t.summary"
  return "$status"
}

failed=0
for t in "${targets[@]}"; do
  run_one "$t" &
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || failed=1; done
done
while [ "$(jobs -rp | wc -l)" -gt 0 ]; do wait -n || failed=1; done
for t in "${targets[@]}"; do
  if [ -n "$(ls -A "work/$t.min" 2>/dev/null)" ]; then
    rm -rf "corpus/$t" && cp -r "work/$t.min" "corpus/$t"
  fi
  cat "logs/$t.summary" 2>/dev/null || true
done
exit "$failed"
