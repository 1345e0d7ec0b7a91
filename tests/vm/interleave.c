/* The test VM's copy of benches/interleave.py (the VM has no python): runs two shell commands
 * RUNS times each, alternating in random order round by round so that drift favours neither,
 * times each run with CLOCK_MONOTONIC from fork to reap (stdout to /dev/null, the command split
 * at spaces and exec'd directly, as interleave.py does; after 10 untimed rounds, as it does),
 * and prints each one's median, p10 and p90 and the ratio of the medians, first to second.
 * A run that fails stops the benchmark.
 *   interleave RUNS NAME1 CMD1 NAME2 CMD2
 * Built static by tests/vm/build.sh. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static double run(const char *cmd) {
  double start = now_ms();
  pid_t pid = fork();
  if (pid == 0) {
    char *copy = strdup(cmd), *argv[64];
    int n = 0;
    for (char *word = strtok(copy, " "); word && n < 63; word = strtok(NULL, " ")) argv[n++] = word;
    argv[n] = NULL;
    int null = open("/dev/null", O_WRONLY);
    dup2(null, 1);
    execvp(argv[0], argv);
    _exit(127);
  }
  int status = 0;
  if (pid < 0 || waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    fprintf(stderr, "interleave: failed (status %d): %s\n", status, cmd);
    exit(1);
  }
  return now_ms() - start;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double pct(double *v, int n, int p) { return v[(n - 1) * p / 100]; }

int main(int argc, char **argv) {
  if (argc != 6) {
    fprintf(stderr, "usage: interleave RUNS NAME1 CMD1 NAME2 CMD2\n");
    return 2;
  }
  int runs = atoi(argv[1]);
  if (runs < 1) return 2;
  double *times[2] = {calloc(runs, sizeof(double)), calloc(runs, sizeof(double))};
  srand((unsigned)time(NULL) ^ (unsigned)getpid());
  for (int i = 0; i < 10; i++) {
    run(argv[3]);
    run(argv[5]);
  }
  for (int i = 0; i < runs; i++) {
    int first = rand() & 1;
    for (int k = 0; k < 2; k++) {
      int which = k == 0 ? first : !first;
      times[which][i] = run(argv[3 + 2 * which]);
    }
  }
  double median[2];
  for (int w = 0; w < 2; w++) {
    qsort(times[w], runs, sizeof(double), cmp);
    median[w] = pct(times[w], runs, 50);
    printf("%-8s median %8.2f ms  p10 %8.2f ms  p90 %8.2f ms  (%d runs)\n", argv[2 + 2 * w], median[w],
           pct(times[w], runs, 10), pct(times[w], runs, 90), runs);
  }
  printf("ratio %s/%s of the medians: %.2f\n", argv[2], argv[4], median[0] / median[1]);
  return 0;
}
