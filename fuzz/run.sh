#!/usr/bin/env bash
# Fuzz the stack-file loader: `fuzz/run.sh [SECONDS]` (default 600).
# Seeds the corpus with berth's examples and the shared compose corpus, then runs libFuzzer.
# cargo-fuzz needs nightly-only rustc flags; on the stable toolchain RUSTC_BOOTSTRAP=1 allows them.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-600}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
mkdir -p corpus/load
find ../examples ../../shared/corpus -name '*.y*ml' -size -64k 2>/dev/null | while read -r f; do
  cp "$f" "corpus/load/$(sha256sum "$f" | cut -c1-16)"
done
export RUSTC_BOOTSTRAP=1
exec cargo fuzz run load --release -- -max_total_time="$seconds" -rss_limit_mb=4096 -timeout=10 -max_len=65536
