#!/usr/bin/env bash
# Watch latency, as root:  bash benches/watch.sh [SAMPLES] [DEBOUNCE...]
#   sync:          from a file written on the host under a `sync` rule's path until a process in
#                  the container reads the new content (polled through the container's own root
#                  every 2 ms);
#   sync+restart:  from a file written under a `sync+restart` rule's path until the restarted
#                  service (busybox httpd, published on 127.0.0.1:18091) answers with it.
# For each debounce window (BERTH_WATCH_DEBOUNCE; compose's is 500 ms) the medians and the
# median minus the window — the part that is berth's — are printed.
set -euo pipefail
cd "$(dirname "$0")/.."
samples=${1:-20}
shift || true
windows=${*:-100ms 500ms}
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
# shellcheck source=benches/lib.sh
source benches/lib.sh
install_missing umoci skopeo busybox-static python3 iptables
build_with_images
work=$(mktemp -d /tmp/berth-watch-bench.XXXXXX)
root="$work/root"
berth="target/release/berth --root $root"
cleanup() {
  $berth -f "$work/bwatchbench/compose.yaml" down -t 0 >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
$berth load -i "$images/busybox.docker.tar" >/dev/null
mkdir -p "$work/bwatchbench/src" "$work/bwatchbench/site"
echo start > "$work/bwatchbench/site/index.html"
cat > "$work/bwatchbench/compose.yaml" <<'YAML'
name: bwatchbench
services:
  app:
    image: berth-test/busybox:latest
    pull_policy: never
    command: ["sleep", "1000000"]
    stop_signal: SIGKILL
    dns: [127.0.0.1]
    develop:
      watch:
        - {path: ./src, target: /app, action: sync}
  web:
    image: berth-test/busybox:latest
    pull_policy: never
    command: ["sh", "-c", "mkdir -p /srv && exec httpd -f -p 8080 -h /srv"]
    stop_signal: SIGKILL
    dns: [127.0.0.1]
    ports: ["127.0.0.1:18091:8080"]
    develop:
      watch:
        - {path: ./site, target: /srv, action: sync+restart, initial_sync: true}
YAML
echo "# bash benches/watch.sh $samples $windows — $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, berth $(git rev-parse --short HEAD)"
echo "| debounce | sync: write → readable in the container | minus the window | sync+restart: write → served again | minus the window |"
echo "| --- | --- | --- | --- | --- |"
for window in $windows; do
  echo start > "$work/bwatchbench/site/index.html"
  BERTH_WATCH_DEBOUNCE=$window $berth -f "$work/bwatchbench/compose.yaml" up -d --watch >/dev/null 2>&1
  python3 - "$samples" "$window" "$root" "$work/bwatchbench" <<'PY'
import json, os, socket, statistics, sys, time
samples, window, root, project = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
seconds = float(window[:-2]) / 1000 if window.endswith("ms") else float(window.rstrip("s"))
def pid_of(name):
    for entry in os.listdir(os.path.join(root, "containers")):
        try:
            state = json.load(open(os.path.join(root, "containers", entry, "state.json")))
        except OSError:
            continue
        if state.get("name") == name:
            return state["pid"]
def get():
    try:
        with socket.create_connection(("127.0.0.1", 18091), timeout=0.5) as s:
            s.sendall(b"GET / HTTP/1.0\r\n\r\n")
            return s.recv(4096).decode(errors="replace")
    except OSError:
        return ""
def wait_until(check, limit=30):
    started = time.perf_counter()
    while time.perf_counter() - started < limit:
        if check():
            return
        time.sleep(0.002)
    sys.exit("timed out")
wait_until(lambda: "start" in get())
time.sleep(1)
sync, restart = [], []
for i in range(samples):
    pid = pid_of("bwatchbench-app-1")
    text = f"sample {i} {time.time()}"
    t0 = time.perf_counter()
    with open(os.path.join(project, "src", "f.txt"), "w") as f:
        f.write(text)
    def visible():
        try:
            return open(f"/proc/{pid}/root/app/f.txt").read() == text
        except OSError:
            return False
    wait_until(visible)
    sync.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    with open(os.path.join(project, "site", "index.html"), "w") as f:
        f.write(text)
    wait_until(lambda: text in get())
    restart.append(time.perf_counter() - t0)
    time.sleep(seconds + 0.2)
ms = lambda v: f"{v * 1000:.0f} ms"
s, r = statistics.median(sync), statistics.median(restart)
print(f"| {window} | {ms(s)} | {ms(s - seconds)} | {ms(r)} | {ms(r - seconds)} |")
PY
  $berth -f "$work/bwatchbench/compose.yaml" down -t 0 >/dev/null 2>&1
done
