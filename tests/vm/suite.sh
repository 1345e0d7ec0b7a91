#!/bin/sh
# The cgroup v2 suite, run by the test VM's init on a pure v2 kernel. Each check prints
# `BERTH-VM ok NAME` or `BERTH-VM FAIL NAME: why`; the last line is
# `BERTH-VM-SUMMARY pass=N fail=M skip=K`, which tests/vm/run.sh turns into its exit status.
export BERTH_ROOT=/var/lib/berth PATH=/usr/sbin:/usr/bin:/sbin:/bin
IMAGE=berth-test/busybox:latest
CG=/sys/fs/cgroup
pass=0
fail=0
skip=0
# berth.only=PATTERN on the kernel command line (run.sh's BERTH_VM_ONLY) runs only the checks
# whose names match, for debugging; the summary counts the rest as skipped, which run.sh fails.
only=$(tr ' ' '\n' < /proc/cmdline | sed -n 's/^berth\.only=//p')

# check NAME FUNCTION: runs FUNCTION (a check below) and records the result; a check prints why
# it failed and returns non-zero. Each has a bounded time so a hang is a failure, not a stall.
check() {
  name=$1
  shift
  if [ -n "$only" ] && [ "$name" != load ] && ! echo "$name" | grep -qE "$only"; then
    skip=$((skip + 1))
    return
  fi
  # The console's tail then shows which check a hung guest was in.
  echo "BERTH-VM start $name"
  # A shell function cannot run under timeout(1): a watchdog kills it instead.
  ("$@") > /tmp/check.out 2>&1 &
  pid=$!
  (sleep 300; kill -9 $pid) 2>/dev/null &
  watchdog=$!
  wait $pid
  code=$?
  kill $watchdog 2>/dev/null
  out=$(cat /tmp/check.out)
  if [ $code = 0 ]; then
    pass=$((pass + 1))
    echo "BERTH-VM ok $name"
  else
    fail=$((fail + 1))
    echo "BERTH-VM FAIL $name (status $code): $(echo "$out" | tail -n 8 | tr '\n' '|')"
    echo "$out" | tail -n 80 | sed "s/^/BERTH-VM | /"
  fi
}

# project NAME YAML-SERVICES: a project directory /root/NAME with that compose file.
project() {
  mkdir -p "/root/$1"
  printf 'name: %s\nservices:\n%s' "$1" "$2" > "/root/$1/compose.yaml"
}
b() { _project=$1; shift; berth -f "/root/$_project/compose.yaml" --progress plain "$@"; }
expect() { [ "$2" = "$3" ] || { echo "$1: expected '$3', got '$2'"; return 1; }; }
# The container's cgroup directory: berth/<id>.
cgroup_of() {
  id=$(b "$1" ps -q "$2" | head -n 1)
  [ -n "$id" ] || { echo "no container for $2"; return 1; }
  dir=$(ls -d "$CG/berth/$id"* 2>/dev/null | head -n 1)
  [ -d "$dir" ] || { echo "no cgroup $CG/berth/$id*: $(ls $CG/berth 2>&1)"; return 1; }
  echo "$dir"
}
# ps --format json field of the service's first container.
field() { b "$1" ps -a --format json | jq -r ".[] | select(.Service == \"$2\") | .$3" | head -n 1; }
# wait_for SECONDS COMMAND...: polls until the command succeeds, for at most SECONDS of guest
# time (a slow command counts against the limit too).
now() { cut -d. -f1 /proc/uptime; }
wait_for() {
  deadline=$(($(now) + $1))
  shift
  while [ "$(now)" -lt $deadline ]; do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  echo "gave up waiting for: $*"
  return 1
}
no_berth_cgroups() {
  left=$(find $CG -name 'berth*' 2>/dev/null)
  [ -z "$left" ] || { echo "cgroups left: $left"; return 1; }
}

load_image() { berth load -i /vm/busybox.docker.tar; }

IDLE='    command: ["sleep", "100000"]
    stop_signal: SIGKILL
    network_mode: none'

project limits "  app:
    image: $IMAGE
$IDLE
    mem_limit: 64m
    cpus: 0.5
    pids_limit: 50
    healthcheck:
      test: [\"CMD\", \"test\", \"-f\", \"/tmp/ready\"]
      interval: 1s
      retries: 1
  ready:
    image: $IMAGE
    command: [\"sh\", \"-c\", \"touch /tmp/ready; exec sleep 100000\"]
    stop_signal: SIGKILL
    network_mode: none
    healthcheck:
      test: [\"CMD\", \"test\", \"-f\", \"/tmp/ready\"]
      interval: 1s
      retries: 1
"
up_limits() { b limits up -d; }
limits_applied() {
  dir=$(cgroup_of limits app) || { echo "$dir"; return 1; }
  expect memory.max "$(cat "$dir/memory.max")" 67108864 || return 1
  expect cpu.max "$(cat "$dir/cpu.max")" "50000 100000" || return 1
  expect pids.max "$(cat "$dir/pids.max")" 50 || return 1
  [ -n "$(cat "$dir/cgroup.procs")" ] || { echo "no process in $dir"; return 1; }
  # Inside, the cgroup namespace shows the container's own cgroup as the root.
  expect /proc/self/cgroup "$(b limits exec -T app cat /proc/self/cgroup)" "0::/"
}
stats_figures() {
  out=$(b limits stats --no-stream) || { echo "$out"; return 1; }
  line=$(echo "$out" | grep limits-app-1) || { echo "no row for limits-app-1: $out"; return 1; }
  echo "$line" | grep -q '/ 64MiB' || { echo "no 64MiB limit: $line"; return 1; }
  pids=$(echo "$line" | awk '{print $NF}')
  [ "$pids" -ge 1 ] 2>/dev/null || { echo "pids column '$pids': $line"; return 1; }
  echo "$line" | grep -qE '[0-9.]+(KiB|MiB|B) / ' || { echo "no memory use: $line"; return 1; }
}
pause_freezes() {
  dir=$(cgroup_of limits app) || { echo "$dir"; return 1; }
  b limits pause app || return 1
  expect cgroup.freeze "$(cat "$dir/cgroup.freeze")" 1 || return 1
  grep -q 'frozen 1' "$dir/cgroup.events" || { echo "cgroup.events: $(cat "$dir/cgroup.events")"; return 1; }
  b limits unpause app || return 1
  expect cgroup.freeze "$(cat "$dir/cgroup.freeze")" 0 || return 1
  grep -q 'frozen 0' "$dir/cgroup.events" || { echo "cgroup.events: $(cat "$dir/cgroup.events")"; return 1; }
  expect state "$(field limits app State)" running
}
exec_relays() {
  out=$(b limits exec -T app sh -c 'echo hello from $(hostname); exit 3')
  code=$?
  expect "exec exit code" $code 3 || return 1
  echo "$out" | grep -q 'hello from' || { echo "exec output: $out"; return 1; }
}
health_checks() {
  expect "ready health" "$(field limits ready Health)" healthy || return 1
  # app never has /tmp/ready: one failed probe makes it unhealthy.
  wait_for 60 sh -c "[ \"\$(berth -f /root/limits/compose.yaml ps -a --format json | jq -r '.[] | select(.Service == \"app\") | .Health')\" = unhealthy ]" \
    || { echo "app health: $(field limits app Health)"; return 1; }
  b limits exec -T app touch /tmp/ready || return 1
  wait_for 60 sh -c "[ \"\$(berth -f /root/limits/compose.yaml ps -a --format json | jq -r '.[] | select(.Service == \"app\") | .Health')\" = healthy ]" \
    || { echo "app health after touch: $(field limits app Health)"; return 1; }
}
# Processes are born in their cgroup (clone3 CLONE_INTO_CGROUP); BERTH_NO_CLONE_INTO_CGROUP
# forces the attach through cgroup.procs that kernels before 5.7 get. Either way the process
# is in its cgroup, limited, before it execs. BERTH_TIMINGS names the path taken.
clone_into_cgroup() {
  out=$(BERTH_TIMINGS=1 b hog run --rm -T hog cat /sys/fs/cgroup/memory.max 2>&1) || { echo "$out"; return 1; }
  echo "$out" | grep -q 'timing born in cgroup' || { echo "not born in its cgroup: $out"; return 1; }
  if echo "$out" | grep -q 'timing cgroup joined'; then echo "attached as well: $out"; return 1; fi
  echo "$out" | grep -qx 16777216 || { echo "memory.max inside: $out"; return 1; }
  # exec'd processes too: in the container's cgroup (its namespace's root) without an attach.
  expect "exec's cgroup" "$(b limits exec -T app cat /proc/self/cgroup)" "0::/"
}
attach_fallback() {
  out=$(BERTH_NO_CLONE_INTO_CGROUP=1 BERTH_TIMINGS=1 b hog run --rm -T hog cat /sys/fs/cgroup/memory.max 2>&1) \
    || { echo "$out"; return 1; }
  echo "$out" | grep -q 'timing cgroup joined' || { echo "not attached: $out"; return 1; }
  if echo "$out" | grep -q 'timing born in cgroup'; then echo "born in its cgroup anyway: $out"; return 1; fi
  echo "$out" | grep -qx 16777216 || { echo "memory.max inside: $out"; return 1; }
  expect "exec's cgroup (attached)" "$(BERTH_NO_CLONE_INTO_CGROUP=1 b limits exec -T app cat /proc/self/cgroup)" "0::/"
}
kill_empties_cgroup() {
  dir=$(cgroup_of limits app) || { echo "$dir"; return 1; }
  [ -f "$dir/cgroup.kill" ] || { echo "this kernel has no cgroup.kill"; return 1; }
  # A second process in the container, started by exec, must go with it.
  b limits exec -T app sh -c 'sleep 100000 >/dev/null 2>&1 &'
  [ "$(wc -l < "$dir/cgroup.procs")" -ge 2 ] || { echo "the exec'd sleep is not in $dir: $(cat "$dir/cgroup.procs")"; return 1; }
  b limits kill app || return 1
  wait_for 30 sh -c "[ \"\$(berth -f /root/limits/compose.yaml ps -a --format json | jq -r '.[] | select(.Service == \"app\") | .State')\" = exited ]" \
    || { echo "state after kill: $(field limits app State)"; return 1; }
  expect "exit code after kill" "$(field limits app ExitCode)" 137 || return 1
  if [ -d "$dir" ]; then
    [ -z "$(cat "$dir/cgroup.procs")" ] || { echo "still in $dir: $(cat "$dir/cgroup.procs")"; return 1; }
  fi
}
down_limits() { b limits down -t 1 && no_berth_cgroups; }

# A container whose processes ignore SIGTERM: down must kill the whole cgroup (cgroup.kill).
project stubborn "  stubborn:
    image: $IMAGE
    command: [\"sh\", \"-c\", \"trap '' TERM; (trap '' TERM; sleep 100000) & (trap '' TERM; sleep 100000) & while :; do sleep 1; done\"]
    network_mode: none
"
stubborn_down() {
  b stubborn up -d || return 1
  dir=$(cgroup_of stubborn stubborn) || { echo "$dir"; return 1; }
  wait_for 30 sh -c "[ \$(wc -l < $dir/cgroup.procs) -ge 3 ]" || { echo "procs: $(cat "$dir/cgroup.procs")"; return 1; }
  b stubborn down -t 1 || return 1
  [ ! -d "$dir" ] || { echo "$dir left with $(cat "$dir/cgroup.procs")"; return 1; }
  no_berth_cgroups
}

project hog "  hog:
    image: $IMAGE
    network_mode: none
    mem_limit: 16m
"
oom_run() {
  out=$(b hog run -T hog sh -c 'tail /dev/zero' 2>&1)
  code=$?
  expect "exit code" $code 137 || { echo "$out"; return 1; }
  echo "$out" | grep -q OOMKilled || { echo "no OOMKilled in: $out"; return 1; }
}
run_relays() {
  out=$(b hog run -T hog sh -c 'echo in-run; exit 7')
  code=$?
  expect "run exit code" $code 7 || return 1
  echo "$out" | grep -q in-run || { echo "$out"; return 1; }
  no_berth_cgroups
}
# The device policy (docker's default allow-list as a BPF program on v2): the container may make
# nodes (CAP_MKNOD) but not open a block device or a character device off the list.
device_policy() {
  out=$(b hog run -T hog sh -c '
    mknod /tmp/loop b 7 0 || { echo "mknod refused, cannot test the policy"; exit 2; }
    mknod /tmp/ttyS0 c 4 64 || exit 2
    echo ok > /dev/null || { echo "/dev/null not writable"; exit 2; }
    bad=0
    if (exec 3</tmp/loop) 2>/dev/null; then echo "opened block device 7:0"; bad=1; fi
    if (exec 3>/tmp/ttyS0) 2>/dev/null; then echo "opened char device 4:64"; bad=1; fi
    exit $bad' 2>&1)
  code=$?
  [ $code = 0 ] || { echo "$out"; return 1; }
}

project restarts "  flaky:
    image: $IMAGE
    network_mode: none
    command: [\"sh\", \"-c\", \"exit 3\"]
    restart: on-failure:2
  always:
    image: $IMAGE
    network_mode: none
    command: [\"sh\", \"-c\", \"if [ -f /state ]; then exec sleep 100000; fi; touch /state; exit 1\"]
    restart: always
    stop_signal: SIGKILL
"
restart_policies() {
  b restarts up -d || return 1
  wait_for 90 sh -c "berth -f /root/restarts/compose.yaml ps -a --format json | jq -e '.[] | select(.Service == \"flaky\") | select(.State == \"exited\" and .Restarts == 2 and .ExitCode == 3)'" \
    || { echo "flaky: $(b restarts ps -a --format json)"; return 1; }
  wait_for 60 sh -c "berth -f /root/restarts/compose.yaml ps -a --format json | jq -e '.[] | select(.Service == \"always\") | select(.State == \"running\" and .Restarts == 1)'" \
    || { echo "always: $(b restarts ps -a --format json)"; return 1; }
  b restarts down -t 1 && no_berth_cgroups
}

mkdir -p /root/built
printf 'FROM %s\nRUN echo built-in-vm > /built && cat /proc/self/cgroup > /cgroup-at-build\n' "$IMAGE" > /root/built/Dockerfile
project built "  svc:
    image: v2-built:latest
    build: .
    network_mode: none
"
build_run_step() {
  b built build || return 1
  out=$(b built run -T svc cat /built /cgroup-at-build) || { echo "$out"; return 1; }
  echo "$out" | grep -q built-in-vm || { echo "$out"; return 1; }
  no_berth_cgroups
}

# Two services on a bridge: a name resolves through berth's DNS and a published port answers.
project net "  web:
    image: $IMAGE
    command: [\"sh\", \"-c\", \"mkdir -p /www && echo hello-from-web > /www/index.html && exec httpd -f -p 80 -h /www\"]
    ports: [\"18080:80\"]
    stop_signal: SIGKILL
  client:
    image: $IMAGE
    command: [\"sleep\", \"100000\"]
    stop_signal: SIGKILL
"
net_diagnostics() {
  b net ps -a
  b net logs web
  b net exec -T web netstat -ltn
  b net exec -T client sh -c 'printf "GET / HTTP/1.0\r\n\r\n" | nc -w 3 web 80 2>&1; echo "nc rc=$?"'
  b net exec -T client ping -c 1 -W 2 web
  /sbin/ip -br addr
  iptables-save
}
# HTTP GET with nc: busybox's wget segfaults under qemu's TCG here (its SHA code, probably).
http_get() { printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 3 "$1" "$2"; }
client_gets_web() {
  b net exec -T client sh -c 'printf "GET / HTTP/1.0\r\n\r\n" | nc -w 3 web 80' | grep -q hello-from-web
}
published_port_answers() { http_get 127.0.0.1 18080 | grep -q hello-from-web; }
network_stack() {
  b net up -d || return 1
  b net exec -T client nslookup web || { echo "nslookup web failed"; /sbin/ip -br addr; iptables-save; return 1; }
  wait_for 60 client_gets_web || { net_diagnostics; return 1; }
  wait_for 60 published_port_answers || { echo "published port: $(http_get 127.0.0.1 18080 2>&1)"; iptables-save; return 1; }
}
network_down() {
  b net down -t 1 || return 1
  no_berth_cgroups || return 1
  left=$(/sbin/ip -o link show | grep -i berth)
  [ -z "$left" ] || { echo "links left: $left"; return 1; }
  left=$(iptables-save 2>/dev/null | grep -i berth)
  [ -z "$left" ] || { echo "rules left: $left"; return 1; }
}
# A host whose tree does not hand the memory controller down to berth: berth's cgroup root (a
# cgroup namespace whose parent enables only cpu and pids) lacks memory. The container runs
# without its memory limits, with one warning per key; the pids limit still applies.
project nomem "  nomem:
    image: $IMAGE
    network_mode: none
    command: [\"sleep\", \"100000\"]
    stop_signal: SIGKILL
    mem_limit: 32m
    mem_reservation: 16m
    pids_limit: 30
"
# in_nomem_tree COMMAND: runs COMMAND (a shell string) with /sys/fs/cgroup rooted at
# berth-nomem/inner, whose parent delegates cpu and pids only.
in_nomem_tree() {
  outer=$CG/berth-nomem
  mkdir -p $outer/inner && echo "+cpu +pids" > $outer/cgroup.subtree_control || return 1
  printf '%s\n' "$1" > /tmp/nomem-command.sh
  cat > /tmp/nomem-tree.sh <<EOS
umount -l /sys/fs/cgroup && mount -t cgroup2 cgroup2 /sys/fs/cgroup && mkdir -p /sys/fs/cgroup/sh &&
  echo \$\$ > /sys/fs/cgroup/sh/cgroup.procs && exec sh /tmp/nomem-command.sh
EOS
  sh -c "echo \$\$ > $outer/inner/cgroup.procs && exec /usr/bin/unshare -m -C sh /tmp/nomem-tree.sh"
  code=$?
  rmdir $outer/inner/sh $outer/inner $outer 2>/dev/null
  return $code
}
undelegated_controller() {
  out=$(in_nomem_tree "berth -f /root/nomem/compose.yaml run --rm -T nomem sh -c 'cat /sys/fs/cgroup/pids.max; ls /sys/fs/cgroup/memory.max'" 2>&1)
  echo "$out"
  expect "mem_limit warnings" "$(echo "$out" | grep -c 'warning: mem_limit is not applied: the memory controller is not delegated')" 1 || return 1
  expect "mem_reservation warnings" "$(echo "$out" | grep -c 'warning: mem_reservation is not applied')" 1 || return 1
  expect "warnings" "$(echo "$out" | grep -c warning)" 2 || return 1
  echo "$out" | grep -qx 30 || { echo "pids.max not 30"; return 1; }
  # memory.max is absent from the container's cgroup: the ls failed, so did the run.
  echo "$out" | grep -q 'memory.max: No such file' || { echo "memory.max exists"; return 1; }
  # up: the CLI warns before the supervisor starts (once per key); the container runs.
  out=$(in_nomem_tree "berth -f /root/nomem/compose.yaml up -d && berth -f /root/nomem/compose.yaml ps --format json && berth -f /root/nomem/compose.yaml down -t 1" 2>&1)
  echo "$out"
  expect "up's mem_limit warnings" "$(echo "$out" | grep -c 'service \"nomem\": mem_limit is not applied')" 1 || return 1
  echo "$out" | grep -q running || { echo "not running under up"; return 1; }
  no_berth_cgroups
}
nothing_left() {
  no_berth_cgroups || return 1
  left=$(grep berth /proc/self/mountinfo)
  [ -z "$left" ] || { echo "mounts left: $left"; return 1; }
}

check load load_image
check up-with-limits up_limits
check limits-in-cgroup-files limits_applied
check stats-no-stream stats_figures
check pause-cgroup-freeze pause_freezes
check exec exec_relays
check clone-into-cgroup clone_into_cgroup
check attach-fallback attach_fallback
check health-checks health_checks
check kill kill_empties_cgroup
check down-leaves-no-cgroup down_limits
check down-kills-stubborn-cgroup stubborn_down
check oom-kill-reported oom_run
check run run_relays
check device-policy-bpf device_policy
check restart-policies restart_policies
check build-run-step build_run_step
check network-names-and-published-port network_stack
check network-down network_down
check undelegated-controller-warns undelegated_controller
check nothing-left nothing_left
echo "BERTH-VM-SUMMARY pass=$pass fail=$fail skip=$skip"
