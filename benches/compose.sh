#!/usr/bin/env bash
# Side by side, in one run on this machine: berth against docker compose v2 and podman-compose,
# on the shared benchmark stacks (../shared/bench/stacks, image localhost/busybox:latest):
#   a: 1 service, b: 10 independent, c: 10 in a depends_on chain, d: 50 independent,
#   e: db with a health check, web (busybox httpd on 127.0.0.1:18080) after db is healthy, worker,
#   f: one `restart: always` service (`sleep 86313`, so its process is found in /proc).
# Figures (medians over RUNS; the tools alternate run by run, in a rotating order):
#   - `up -d` of a, b, c, d; `down` of b and d;
#   - stack e: from the start of `up -d` until a GET to 127.0.0.1:18080 answers (all three tools
#     run plain `up -d`, then the harness polls every 10 ms); `up -d --wait` until it returns
#     (berth, docker); web's start minus db's start (the health gate's latency: db is ready as soon
#     as its command runs);
#   - restart after `kill -9` of f's process: from the kill until a new `sleep 86313` runs
#     (each sample on a fresh `up -d`, so every engine uses its first, 100 ms back-off);
#   - supporting-process RSS per running container: (RSS with d's 50 containers − RSS with a's 1)
#     / 49, read 2 s after `up -d` returned. berth: the project's supervisor (and its helper child
#     running the same command line); docker: dockerd +
#     containerd + containerd-shim*; podman: conmon.
# Usage, as root:  bash benches/compose.sh [RUNS]      (default 5; restart samples 2×RUNS)
# It installs the peers if missing (../shared/bench/setup.sh), builds berth, starts containerd,
# dockerd and the loopback registry (../shared/bench/daemons.sh start) and always stops them at
# the end, and removes every project, container and state root it made. Network traffic: only
# loopback and the containers it starts.
set -euo pipefail
runs=${1:-5}
[[ $runs =~ ^[1-9][0-9]*$ ]] || { echo "usage: $0 [RUNS]" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
cmdline="bash benches/compose.sh $*"
repo=$(cd "$(dirname "$0")/.." && pwd)
shared=$(cd "$repo/../shared/bench" 2>/dev/null && pwd) \
  || { echo "missing ../shared/bench beside the repository" >&2; exit 1; }
IMAGE=localhost/busybox:latest
IMAGES=${IMAGES:-/tmp/images}
export IMAGES
TOOLS=(berth docker podman)
cd "$repo"

# --- peers -------------------------------------------------------------------------------------
if ! command -v podman-compose >/dev/null || ! docker compose version >/dev/null 2>&1 \
  || ! command -v dockerd >/dev/null || ! [ -f "$IMAGES/busybox-rootfs.tar" ]; then
  echo "# installing the peers: $shared/setup.sh"
  bash "$shared/setup.sh" || echo "# setup.sh failed; the peers it could not install are n/a"
fi

# --- berth ---------------------------------------------------------------------------------------
echo "# building berth (release)"
cargo build --release --quiet
berth_bin=${CARGO_TARGET_DIR:-$repo/target}/release/berth

work=$(mktemp -d /tmp/berth-compose-bench.XXXXXX)
root=$work/root
results=$work/results.tsv
: > "$results"
daemons_started=0
# daemons.sh keeps its record of the host's network state in /tmp/bench-state: ours goes at the end
bench_state_was_there=0; [ -e /tmp/bench-state/iptables-before.txt ] && bench_state_was_there=1

# --- the timing helper -------------------------------------------------------------------------
cat > "$work/h.py" <<'PY'
import json, os, re, signal, socket, statistics, subprocess, sys, time
from datetime import datetime, timezone

def spawn_timed(argv, log):
    with open(log, "ab") as out:
        t0 = time.perf_counter()
        rc = subprocess.call(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        return rc, time.perf_counter() - t0, t0

def http_ok(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.settimeout(0.5)
            s.sendall(b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            data = s.recv(64)
            return data.startswith(b"HTTP/1.") and b" 200" in data[:16]
    except OSError:
        return False

def pids_with_cmdline(want):
    found = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                if f.read() == want:
                    found.append(int(d))
        except OSError:
            pass
    return found

def rss_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0

def ppid(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return 0

def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return b""

def comm(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""

def parse_time(s):
    """RFC 3339 (docker) or podman's '2006-01-02 15:04:05.999999999 -0700 MST' -> unix seconds."""
    m = re.match(r"(\d{4}-\d\d-\d\d)[T ](\d\d:\d\d:\d\d)(?:\.(\d+))?\s*(Z|[+-]\d\d:?\d\d)?", s.strip())
    if not m:
        raise ValueError(f"unparsed time {s!r}")
    base = datetime.strptime(m.group(1) + " " + m.group(2), "%Y-%m-%d %H:%M:%S")
    tz = m.group(4) or "Z"
    off = 0
    if tz != "Z":
        tz = tz.replace(":", "")
        off = (int(tz[1:3]) * 3600 + int(tz[3:5]) * 60) * (1 if tz[0] == "+" else -1)
    frac = (m.group(3) or "0")[:9].ljust(9, "0")
    return base.replace(tzinfo=timezone.utc).timestamp() - off + int(frac) / 1e9

def main():
    cmd = sys.argv[1]
    log = os.environ.get("BENCH_LOG", os.devnull)   # the compose tool's output goes there
    if cmd == "time":        # time -- argv...: prints seconds; exit status of argv
        argv = sys.argv[3:]
        rc, dt, _ = spawn_timed(argv, log)
        print(f"{dt:.6f}")
        sys.exit(rc)
    if cmd == "http":        # http PORT TIMEOUT -- argv...: from the start of argv until GET answers
        port, limit, argv = int(sys.argv[2]), float(sys.argv[3]), sys.argv[5:]
        rc, dt, t0 = spawn_timed(argv, log)
        if rc != 0:
            sys.exit(rc)
        while not http_ok(port):
            if time.perf_counter() - t0 > limit:
                print(f"no HTTP answer on 127.0.0.1:{port} after {limit} s", file=sys.stderr)
                sys.exit(3)
            time.sleep(0.01)
        print(f"{time.perf_counter() - t0:.6f} {dt:.6f}")
        return
    if cmd == "waitproc":    # waitproc TIMEOUT ARG...: the one pid running exactly ARG...
        limit, want = float(sys.argv[2]), b"\0".join(a.encode() for a in sys.argv[3:]) + b"\0"
        t0 = time.perf_counter()
        while True:
            p = pids_with_cmdline(want)
            if len(p) == 1:
                print(p[0]); return
            if len(p) > 1:
                sys.exit(f"more than one process runs {sys.argv[3:]}: {p}")
            if time.perf_counter() - t0 > limit:
                sys.exit(f"no process runs {sys.argv[3:]} after {limit} s")
            time.sleep(0.01)
    if cmd == "restart":     # restart PID TIMEOUT ARG...: kill -9 PID, time until another pid runs ARG...
        old, limit = int(sys.argv[2]), float(sys.argv[3])
        want = b"\0".join(a.encode() for a in sys.argv[4:]) + b"\0"
        if old not in pids_with_cmdline(want):
            sys.exit(f"pid {old} does not run {sys.argv[4:]}")
        t0 = time.perf_counter()
        os.kill(old, signal.SIGKILL)
        while True:
            p = [x for x in pids_with_cmdline(want) if x != old]
            if p:
                print(f"{time.perf_counter() - t0:.6f}"); return
            if time.perf_counter() - t0 > limit:
                sys.exit(f"no new process runs {sys.argv[4:]} {limit} s after kill -9")
            time.sleep(0.002)
    if cmd == "rss":         # rss PID...|tree=PID|comm=NAME|commprefix=NAME ...: summed VmRSS in kB
        total, pids = 0, set()
        allpids = [int(d) for d in os.listdir("/proc") if d.isdigit()]
        for a in sys.argv[2:]:
            if a.startswith("tree="):   # PID and its children running the same command line (helpers)
                top = int(a[5:])
                pids.add(top)
                pids |= {p for p in allpids if ppid(p) == top and cmdline(p) == cmdline(top)}
            elif a.startswith("comm="):
                pids |= {p for p in allpids if comm(p) == a[5:]}
            elif a.startswith("commprefix="):
                pids |= {p for p in allpids if comm(p).startswith(a[11:])}
            else:
                pids.add(int(a))
        for p in pids:
            total += rss_kb(p)
        print(f"{total} {len(pids)}")
        return
    if cmd == "berthgate":   # berthgate: berth ps --format json on stdin -> web start - db start (s)
        text = sys.stdin.read().strip()
        rows = json.loads(text) if text.startswith("[") else [json.loads(l) for l in text.splitlines() if l.strip()]
        start = {r["Service"]: int(r["StartedAt"]) for r in rows}
        print(f"{(start['web'] - start['db']) / 1e9:.6f}")
        return
    if cmd == "gate":        # gate DB_STARTED WEB_STARTED (engine time strings): seconds between
        print(f"{parse_time(sys.argv[3]) - parse_time(sys.argv[2]):.6f}")
        return
    if cmd == "table":       # table RESULTS META...: the markdown table of medians
        table(sys.argv[2], sys.argv[3:])
        return
    sys.exit(f"unknown helper command {cmd}")

ROWS = [
    ("up1", "`up -d` 1 service (a)", "s"),
    ("up10", "`up -d` 10 independent (b)", "s"),
    ("upchain", "`up -d` 10 in a depends_on chain (c)", "s"),
    ("up50", "`up -d` 50 independent (d)", "s"),
    ("down10", "`down` 10 (b)", "s"),
    ("down50", "`down` 50 (d)", "s"),
    ("http", "stack e: start of `up -d` until GET 127.0.0.1:18080 answers", "s"),
    ("upe", "stack e: `up -d` alone returns", "s"),
    ("wait", "stack e: `up -d --wait` returns (web healthy)", "s"),
    ("gate", "stack e: web started − db started (health gate)", "s"),
    ("restart", "restart after `kill -9` (`restart: always`), until a new process runs", "s"),
    ("rss1", "supporting-process RSS with 1 container (a)", "MB"),
    ("rss50", "supporting-process RSS with 50 containers (d)", "MB"),
    ("mem", "supporting-process RSS per running container ((d − a) / 49)", "MB"),
]

def fmt(v, unit):
    if unit == "MB":
        return f"{v:.2f} MB"
    return f"{v:.3f} s" if v < 10 else f"{v:.2f} s"

def table(path, meta):
    tools = ["berth", "docker", "podman"]
    names = dict(m.split("=", 1) for m in meta)
    vals, fails = {}, {}
    for line in open(path):
        f = line.rstrip("\n").split("\t")
        if len(f) < 3:
            continue
        if f[2] == "FAIL":
            fails.setdefault((f[0], f[1]), f[3] if len(f) > 3 else "failed")
        else:
            vals.setdefault((f[0], f[1]), []).append(float(f[2]))
    med = {k: statistics.median(v) for k, v in vals.items()}
    notes = []
    def cell(row, tool, unit):
        k = (row, tool)
        if k in fails:
            reason = fails[k]
            if reason not in notes:
                notes.append(reason)
            return f"n/a [{notes.index(reason) + 1}]"
        if k not in med:
            return "–"
        n = len(vals[k])
        return fmt(med[k], unit) + (f" (n={n})" if row == "restart" else "")
    def ratio(row, peer):
        a, b = med.get((row, "berth")), med.get((row, peer))
        if a is None or b is None or (row, peer) in fails or b == 0:
            return "–"
        return f"{a / b:.2f}"
    print(f"| figure | berth | {names['docker']} | {names['podman']} | berth/docker | berth/podman |")
    print("| --- | --- | --- | --- | --- | --- |")
    for row, label, unit in ROWS:
        if not any((row, t) in med or (row, t) in fails for t in tools):
            continue
        print(f"| {label} | " + " | ".join(cell(row, t, unit) for t in tools)
              + f" | {ratio(row, 'docker')} | {ratio(row, 'podman')} |")
    for i, n in enumerate(notes, 1):
        print(f"\n[{i}] {n}")

main()
PY
h() { python3 "$work/h.py" "$@"; }

# --- cleanup, always ---------------------------------------------------------------------------
stacks_all=(bench-a-one bench-b-ten bench-c-chain bench-d-fifty bench-e-app bench-f-restart)
cleanup() {
  local rc=$? p ids
  trap - EXIT INT TERM
  set +e
  echo "# $(date +%T) cleaning up"
  if [ -d "$root" ]; then
    for p in "${stacks_all[@]}"; do
      [ -d "$root/projects/$p" ] && "$berth_bin" --root "$root" -p "$p" -f "$work/stacks/$p/compose.yaml" down -t 0 >>"$work/cleanup.log" 2>&1
    done
  fi
  if [ "$daemons_started" = 1 ] && docker info >/dev/null 2>&1; then
    for p in "${stacks_all[@]}"; do
      mapfile -t ids < <(docker ps -aq --filter "label=com.docker.compose.project=$p")
      [ "${#ids[@]}" -gt 0 ] && docker rm -f "${ids[@]}" >>"$work/cleanup.log" 2>&1
      docker network rm "${p}_default" >>"$work/cleanup.log" 2>&1
    done
  fi
  if command -v podman >/dev/null; then
    for p in "${stacks_all[@]}"; do
      mapfile -t ids < <(podman ps -aq --filter "label=com.docker.compose.project=$p")
      [ "${#ids[@]}" -gt 0 ] && podman rm -f "${ids[@]}" >>"$work/cleanup.log" 2>&1
      podman pod exists "pod_$p" 2>/dev/null && podman pod rm -f "pod_$p" >>"$work/cleanup.log" 2>&1
      podman network exists "${p}_default" 2>/dev/null && podman network rm -f "${p}_default" >>"$work/cleanup.log" 2>&1
    done
  fi
  if [ "$daemons_started" = 1 ]; then
    bash "$shared/daemons.sh" stop >>"$work/cleanup.log" 2>&1
    [ "$bench_state_was_there" = 0 ] && rm -rf /tmp/bench-state
    if [ "$(iptables-save | grep -c DOCKER)" != 0 ]; then
      echo "warning: Docker's firewall rules are still there after daemons.sh stop:" >&2
      iptables-save | grep DOCKER >&2
      rc=1
    fi
  fi
  # berth down keeps a project's logs directory; a supervisor.json means a project still runs
  if compgen -G "$root/projects/*/supervisor.json" >/dev/null; then
    echo "warning: berth projects still up in $root/projects (kept for inspection)" >&2
    rc=1
  else
    rm -rf "$work"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- the stacks, copied --------------------------------------------------------------------------
mkdir -p "$work/stacks" "$work/logs"
cp -r "$shared/stacks/." "$work/stacks/"
for p in "${stacks_all[@]}"; do
  [ -f "$work/stacks/$p/compose.yaml" ] || { echo "missing stack $shared/stacks/$p" >&2; exit 1; }
done

# --- which tools can run -------------------------------------------------------------------------
declare -A na=()   # tool -> reason it is n/a for every figure
berth_version=$("$berth_bin" --version 2>/dev/null | head -n1)
"$berth_bin" --root "$root" import --cmd /bin/sh -e PATH=/usr/sbin:/usr/bin:/sbin:/bin \
  "$IMAGES/busybox-rootfs.tar" "$IMAGE" >"$work/logs/berth-import.log" 2>&1 \
  || { cat "$work/logs/berth-import.log" >&2; echo "berth import failed" >&2; exit 1; }

docker_name="docker compose"
if ! command -v dockerd >/dev/null || ! docker compose version >/dev/null 2>&1; then
  na[docker]="docker compose v2 or dockerd is not installed"
else
  echo "# $(date +%T) starting containerd, dockerd, registry: $shared/daemons.sh start"
  daemons_started=1
  if ! bash "$shared/daemons.sh" start >"$work/logs/daemons-start.log" 2>&1; then
    na[docker]="daemons.sh start failed: $(tail -n1 "$work/logs/daemons-start.log")"
  elif ! docker image inspect "$IMAGE" >/dev/null 2>&1 \
    && ! docker load -i "$IMAGES/busybox-docker-archive.tar" >>"$work/logs/daemons-start.log" 2>&1; then
    na[docker]="could not load $IMAGE into docker"
  fi
  docker_name="docker compose $(docker compose version --short 2>/dev/null)"
fi
podman_name="podman-compose"
if ! command -v podman-compose >/dev/null || ! command -v podman >/dev/null; then
  na[podman]="podman-compose is not installed"
else
  podman_name="podman-compose $(podman-compose --version 2>/dev/null | sed -n 's/.*version \([0-9.]*\).*/\1/p' | head -n1)"
  podman image exists "$IMAGE" || na[podman]="$IMAGE is not in podman's store (setup.sh imports it)"
fi

# --- per-tool commands ---------------------------------------------------------------------------
compose() { # tool project -> the compose command line, in the array C
  local f="$work/stacks/$2/compose.yaml"
  case $1 in
    berth) C=("$berth_bin" --root "$root" -p "$2" -f "$f") ;;
    docker) C=(docker compose -p "$2" -f "$f") ;;
    podman) C=(podman-compose -p "$2" -f "$f") ;;
  esac
}
record() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >> "$results"; }
# fail TOOL FIGURE REASON: berth failing ends the benchmark; a peer is n/a for that figure.
fail() {
  local log="$work/logs/$1.log"
  if [ "$1" = berth ]; then
    echo "berth failed: $3" >&2; echo "--- last lines of $log:" >&2; tail -n 30 "$log" >&2
    exit 1
  fi
  printf '%s\t%s\tFAIL\t%s\n' "$2" "$1" "$1: $3" >> "$results"
  echo "  $1: $2 failed: $3 (see the log tail below)"; tail -n 5 "$log" | sed 's/^/    /'
}
timed() { # tool figure log args...: time the compose command, record, or fail
  local tool=$1 fig=$2 log=$3 t; shift 3
  if t=$(BENCH_LOG=$log h time -- "$@" 2>>"$log"); then record "$fig" "$tool" "$t"; return 0; fi
  fail "$tool" "$fig" "\`${*: -2}\` exited non-zero"; return 1
}
down_quiet() { # tool project: an untimed down that kills at once (after a failure)
  compose "$1" "$2"
  "${C[@]}" down -t 0 >>"$work/logs/$1.log" 2>&1 || true
}
support_rss() { # tool project -> "kB count" of the supporting processes
  case $1 in
    berth) h rss "tree=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["pid"])' "$root/projects/$2/supervisor.json")" ;;
    docker) h rss comm=dockerd comm=containerd commprefix=containerd-shim comm=docker-proxy ;;
    podman) h rss comm=conmon ;;
  esac
}
engine_started() { # tool project service -> the container's start time as the engine prints it
  local id
  case $1 in
    docker) id=$(docker compose -p "$2" -f "$work/stacks/$2/compose.yaml" ps -q "$3") \
              && docker inspect -f '{{.State.StartedAt}}' "$id" ;;
    podman) id=$(podman ps -q --filter "label=com.docker.compose.project=$2" --filter "label=com.docker.compose.service=$3") \
              && podman inspect -f '{{.State.StartedAt}}' "$id" ;;
  esac
}
engine_pid() { # tool project service -> the container's main pid as the engine reports it
  local id
  case $1 in
    docker) id=$(docker compose -p "$2" -f "$work/stacks/$2/compose.yaml" ps -q "$3") \
              && docker inspect -f '{{.State.Pid}}' "$id" ;;
    podman) id=$(podman ps -q --filter "label=com.docker.compose.project=$2" --filter "label=com.docker.compose.service=$3") \
              && podman inspect -f '{{.State.Pid}}' "$id" ;;
    berth) "$berth_bin" --root "$root" -p "$2" -f "$work/stacks/$2/compose.yaml" top "$3" \
              | awk '$NF == "86313" && $(NF-1) == "sleep" {print $2}' ;;
  esac
}

# --- one measurement of one stack with one tool --------------------------------------------------
measure() { # tool stack
  local tool=$1 st=$2 log="$work/logs/$1.log" p out r pid
  [ -n "${na[$tool]:-}" ] && return 0
  echo "== $(date +%T) $tool $st" >> "$log"
  case $st in
    a|d)
      p=$([ "$st" = a ] && echo bench-a-one || echo bench-d-fifty)
      compose "$tool" "$p"
      if timed "$tool" "$([ "$st" = a ] && echo up1 || echo up50)" "$log" "${C[@]}" up -d; then
        sleep 2
        out=$(support_rss "$tool" "$p") || out=""
        [ -n "$out" ] && record "$([ "$st" = a ] && echo rss1 || echo rss50)" "$tool" "$(awk '{printf "%.3f", $1/1024}' <<<"$out")"
        echo "   $tool $p: supporting RSS $out (kB, processes)" >> "$log"
      fi
      if [ "$st" = d ]; then timed "$tool" down50 "$log" "${C[@]}" down || down_quiet "$tool" "$p"
      else "${C[@]}" down >>"$log" 2>&1 || { fail "$tool" up1 "\`down\` of a failed"; down_quiet "$tool" "$p"; }; fi
      ;;
    b)
      compose "$tool" bench-b-ten
      timed "$tool" up10 "$log" "${C[@]}" up -d
      timed "$tool" down10 "$log" "${C[@]}" down || down_quiet "$tool" bench-b-ten
      ;;
    c)
      compose "$tool" bench-c-chain
      timed "$tool" upchain "$log" "${C[@]}" up -d
      "${C[@]}" down >>"$log" 2>&1 || { fail "$tool" upchain "\`down\` of c failed"; down_quiet "$tool" bench-c-chain; }
      ;;
    e)
      compose "$tool" bench-e-app
      if out=$(BENCH_LOG=$log h http 18080 60 -- "${C[@]}" up -d 2>>"$log"); then
        record http "$tool" "${out% *}"; record upe "$tool" "${out#* }"
        if [ "$tool" = berth ]; then
          if r=$("${C[@]}" ps --format json 2>>"$log" | h berthgate 2>>"$log"); then record gate berth "$r"
          else fail berth gate "no StartedAt of db and web in \`ps --format json\`"; fi
        else
          if r=$(h gate "$(engine_started "$tool" bench-e-app db)" "$(engine_started "$tool" bench-e-app web)" 2>>"$log")
          then record gate "$tool" "$r"; else fail "$tool" gate "no StartedAt of db and web from the engine"; fi
        fi
      else
        fail "$tool" http "\`up -d\` failed or web never answered"
      fi
      "${C[@]}" down >>"$log" 2>&1 || { fail "$tool" http "\`down\` of e failed"; down_quiet "$tool" bench-e-app; }
      # up -d --wait: podman's health checks run from systemd timers, absent here
      if [ "$tool" = podman ]; then
        printf 'wait\tpodman\tFAIL\t%s\n' "podman: not measured: podman 4.3 runs health checks from systemd timers, and this machine has no systemd" >> "$results"
      else
        timed "$tool" wait "$log" "${C[@]}" up -d --wait \
          && { BENCH_LOG=$log h http 18080 5 -- true >/dev/null 2>>"$log" || fail "$tool" wait "web did not answer after \`up -d --wait\`"; }
        "${C[@]}" down >>"$log" 2>&1 || { fail "$tool" wait "\`down\` of e failed"; down_quiet "$tool" bench-e-app; }
      fi
      ;;
    f)
      compose "$tool" bench-f-restart
      if ! "${C[@]}" up -d >>"$log" 2>&1; then
        fail "$tool" restart "\`up -d\` of f failed"; down_quiet "$tool" bench-f-restart; return 0
      fi
      if ! pid=$(h waitproc 20 sleep 86313 2>>"$log"); then
        fail "$tool" restart "no \`sleep 86313\` process after \`up -d\`"
      else
        r=$(engine_pid "$tool" bench-f-restart r01 2>>"$log") || r=""
        if [ "$r" != "$pid" ]; then
          fail "$tool" restart "the process found in /proc ($pid) is not the one the engine reports ($r)"
        else
          sleep 1   # let the engine settle on a running container
          if r=$(h restart "$pid" 30 sleep 86313 2>>"$log"); then record restart "$tool" "$r"
          else fail "$tool" restart "no new process after kill -9"; fi
        fi
      fi
      "${C[@]}" down >>"$log" 2>&1 || { fail "$tool" restart "\`down\` of f failed"; down_quiet "$tool" bench-f-restart; }
      ;;
  esac
  return 0
}

# --- the runs ------------------------------------------------------------------------------------
echo "# $runs runs; tools alternate in a rotating order; logs in $work/logs"
t_start=$(date +%s)
for run in $(seq 1 "$runs"); do
  k=$(( (run - 1) % 3 ))
  order=("${TOOLS[@]:k}" "${TOOLS[@]:0:k}")
  echo "# run $run/$runs ($(date +%T)), order: ${order[*]}"
  for st in a b c d e f f; do
    for tool in "${order[@]}"; do measure "$tool" "$st"; done
  done
done
echo "# measured in $(( $(date +%s) - t_start )) s"

# memory per container: per run, (rss50 - rss1) / 49, from the samples in order
python3 - "$results" <<'PY'
import sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
out = []
for tool in ("berth", "docker", "podman"):
    r1 = [float(r[2]) for r in rows if r[0] == "rss1" and r[1] == tool and r[2] != "FAIL"]
    r50 = [float(r[2]) for r in rows if r[0] == "rss50" and r[1] == tool and r[2] != "FAIL"]
    for a, b in zip(r1, r50):
        out.append(f"mem\t{tool}\t{(b - a) / 49:.4f}\n")
open(sys.argv[1], "a").writelines(out)
PY
for tool in docker podman; do
  [ -n "${na[$tool]:-}" ] && for fig in up1 up10 upchain up50 down10 down50 http gate restart mem; do
    printf '%s\t%s\tFAIL\t%s\n' "$fig" "$tool" "$tool: ${na[$tool]}" >> "$results"
  done
done

echo
echo "## berth vs docker compose vs podman-compose"
echo
echo "\`$cmdline\` — $(date -u '+%Y-%m-%d %H:%M UTC'), kernel $(uname -r), $(nproc) cores;"
echo "$berth_version ($(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo '?')), $docker_name (dockerd $(docker version -f '{{.Server.Version}}' 2>/dev/null || echo '?')), $podman_name (podman $(podman --version 2>/dev/null | awk '{print $3}'))."
echo "Medians of $runs runs (restart: $((2 * runs)) samples); ratio = berth median / peer median."
echo "Stack e: every tool runs plain \`up -d\` (which waits for db to be healthy before starting web), then the"
echo "harness sends a GET to 127.0.0.1:18080 every 10 ms; the \`--wait\` row times \`up -d --wait\` alone."
echo "Health gate: web's start minus db's start (berth: ps --format json StartedAt; peers: inspect State.StartedAt)."
echo
h table "$results" "docker=$docker_name" "podman=$podman_name"
