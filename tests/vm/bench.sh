#!/bin/sh
# benches/runtime.sh inside the test VM (tests/vm/init2 runs it for berth.bench=RUNS): a busybox
# `true` container created, started, waited for and deleted, berth against crun on the same
# pure cgroup v2 kernel, alternating run by run (tests/vm/interleave.c). The same two commands
# as benches/runtime.sh: `berth run --rm -T t` of a one-service stack with network_mode: none,
# and `crun run` of an OCI bundle of the same busybox rootfs with crun's default spec (made on
# the host by tests/vm/build.sh). Prints BERTH-VM-BENCH lines, then BERTH-VM-BENCH-DONE.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
runs=$1
root=/var/lib/berth-bench
say() { echo "BERTH-VM-BENCH $*"; }
[ -x /usr/bin/crun ] || { say "FAIL: no crun in the VM (install crun on the host and rebuild)"; exit 1; }
berth --root $root load -i /vm/busybox.docker.tar >/dev/null || { say "FAIL: load"; exit 1; }
mkdir -p /root/bench
cat > /root/bench/compose.yaml <<'YAML'
services:
  t:
    image: berth-test/busybox:latest
    pull_policy: never
    command: ["true"]
    network_mode: none
YAML
berth_cmd="berth --root $root -f /root/bench/compose.yaml run --rm -T t"
crun_cmd="crun --cgroup-manager=cgroupfs run --bundle /vm/bundle berth-bench-$$"
$berth_cmd && $crun_cmd || { say "FAIL: a first run failed"; exit 1; }
say "kernel $(uname -r), cgroup2 only; $(crun --version | head -n 1); $runs runs each"
/vm/interleave "$runs" berth "$berth_cmd" crun "$crun_cmd" 2>&1 | sed 's/^/BERTH-VM-BENCH /'
# The same with CLONE_INTO_CGROUP off (berth attaches, as on a kernel before 5.7).
BERTH_NO_CLONE_INTO_CGROUP=1 /vm/interleave "$runs" berth-attach "$berth_cmd" crun "$crun_cmd" 2>&1 | sed 's/^/BERTH-VM-BENCH /'
echo "BERTH-VM-BENCH-DONE"
