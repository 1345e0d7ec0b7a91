#!/usr/bin/env python3
"""Times two commands in alternation, in random order each round, and prints their medians and
the ratio of the first to the second.

Alternating (rather than all runs of one, then all of the other, as hyperfine does) keeps slow
drift of a shared VM — and kernel state one command leaves for the next — from favouring either
side. Each run is started with posix_spawn and its wall time taken from spawn to reap; the
harness overhead is the same for both commands.

    interleave.py RUNS NAME1 'COMMAND1' NAME2 'COMMAND2'
"""
import os
import random
import shlex
import statistics
import sys
import time

WARMUP = 10


def run(argv, devnull):
    started = time.perf_counter()
    pid = os.posix_spawnp(argv[0], argv, os.environ, file_actions=[(os.POSIX_SPAWN_DUP2, devnull, 1)])
    _, status = os.waitpid(pid, 0)
    elapsed = time.perf_counter() - started
    if status != 0:
        sys.exit(f"{shlex.join(argv)} failed with wait status {status}")
    return elapsed


def main():
    runs = int(sys.argv[1])
    commands = {sys.argv[2]: shlex.split(sys.argv[3]), sys.argv[4]: shlex.split(sys.argv[5])}
    devnull = os.open(os.devnull, os.O_RDWR)
    for _ in range(WARMUP):
        for argv in commands.values():
            run(argv, devnull)
    times = {name: [] for name in commands}
    for _ in range(runs):
        order = list(commands)
        random.shuffle(order)
        for name in order:
            times[name].append(run(commands[name], devnull))
    medians = {}
    for name, samples in times.items():
        samples.sort()
        medians[name] = statistics.median(samples) * 1000
        p10 = samples[len(samples) // 10] * 1000
        p90 = samples[9 * len(samples) // 10] * 1000
        print(f"{name}: median {medians[name]:.1f} ms, p10 {p10:.1f} ms, p90 {p90:.1f} ms ({runs} runs)")
    first, second = list(commands)
    print(f"ratio {first}/{second} (medians): {medians[first] / medians[second]:.2f}")


if __name__ == "__main__":
    main()
