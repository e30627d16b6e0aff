/*
 * slope_bench.c - slope's side of the peer benchmarks: W1-W6 of
 * ../shared/bench/WORKLOADS.md, run with slope's public API on the same data,
 * in the same order of operations and with the same timing protocol as the
 * peer programs, printing their RESULT/CHECK line format with peer=slope (and
 * peer=c-handwritten for the hand-written C floors that have no peer program).
 *
 *   slope-bench [--threads N] [--workload W1,W2,...] [--quick] [--data DIR] [--no-fork]
 *
 * --threads N   only reported in the RESULT lines: slope is single-threaded
 *               today, and slope-bench pins nothing (run_all.sh uses taskset).
 * --workload    a comma-separated subset of W1..W6 (default: all).
 * --quick       tiny repeat counts and shortened runs: a smoke test of the
 *               validation values (CI). Timings are meaningless then.
 * --data DIR    where the CSV files are (default: tests/bench/data of the source tree).
 * --no-fork     run every workload in this process (default: one child process
 *               per workload, so each reports its own peak RSS and a crash in
 *               one does not hide the others).
 *
 * Exit status: 0 when every CHECK with a reference value matched and no
 * workload failed; 1 otherwise; 2 for a usage error.
 */
#include "bench.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef SLOPE_BENCH_DATA
#define SLOPE_BENCH_DATA "tests/bench/data"
#endif

static const struct {
    const char *id;
    const char *wl; /* the workload name its peak RSS is reported under */
    int (*run)(const bench_opts *);
} workloads[] = {
    {"W1", "W1-op-overhead", bench_w1},          {"W2", "W2-planar", bench_w2},
    {"W3", "W3-mlp-medium", bench_w3},           {"W4", "W4-matmul-1024", bench_w4},
    {"W5", "W5-speelpenning-n100000", bench_w5}, {"W6", "W6-micrograd-moons", bench_w6},
};
#define NWL ((int)(sizeof workloads / sizeof workloads[0]))

static void usage(FILE *f) {
    fprintf(f, "usage: slope-bench [--threads N] [--workload W1,W2,...] [--quick] [--data DIR] "
               "[--no-fork]\n");
}

/* Mark the workloads named in a comma-separated list ("W1,W3" or "w1,W3-mlp"). */
static int select_workloads(const char *list, int *on) {
    char buf[256];
    snprintf(buf, sizeof buf, "%s", list);
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        int found = 0;
        for (int i = 0; i < NWL; i++)
            if ((tok[0] == 'W' || tok[0] == 'w') && tok[1] == workloads[i].id[1] &&
                (tok[2] == '\0' || tok[2] == '-')) {
                on[i] = 1;
                found = 1;
            }
        if (!found) {
            fprintf(stderr, "slope-bench: unknown workload \"%s\" (W1..W6)\n", tok);
            return -1;
        }
    }
    return 0;
}

/* Run one workload here; print its peak RSS. Returns 0 if it passed. */
static int run_one(const bench_opts *o, int i) {
    int before = bench_failures();
    int rc = workloads[i].run(o);
    struct rusage ru;
    const char *wl = workloads[i].wl;
    if (o->quick && workloads[i].run == bench_w4) wl = "W4-matmul-256"; /* --quick: n = 256 only */
    if (getrusage(RUSAGE_SELF, &ru) == 0)
        bench_result(o, wl, "slope", "peak_rss_mib", (double)ru.ru_maxrss / 1024.0, "MiB");
    if (rc != 0 && bench_failures() == before)
        bench_fail(workloads[i].id, "the workload failed (status %d)", rc);
    return bench_failures() != before;
}

int main(int argc, char **argv) {
    bench_opts o = {.threads = 1, .quick = 0, .data_dir = SLOPE_BENCH_DATA};
    int on[NWL] = {0}, any = 0, fork_each = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--threads") && v) {
            char *end;
            long n = strtol(v, &end, 10);
            if (*end || n < 1 || n > 1024) {
                fprintf(stderr, "slope-bench: --threads needs a positive integer, got \"%s\"\n", v);
                return 2;
            }
            o.threads = (int)n;
            i++;
        } else if (!strncmp(a, "--threads=", 10)) {
            o.threads = atoi(a + 10);
            if (o.threads < 1) {
                fprintf(stderr, "slope-bench: bad %s\n", a);
                return 2;
            }
        } else if (!strcmp(a, "--workload") && v) {
            if (select_workloads(v, on)) return 2;
            any = 1;
            i++;
        } else if (!strncmp(a, "--workload=", 11)) {
            if (select_workloads(a + 11, on)) return 2;
            any = 1;
        } else if (!strcmp(a, "--quick")) {
            o.quick = 1;
        } else if (!strcmp(a, "--data") && v) {
            o.data_dir = v;
            i++;
        } else if (!strcmp(a, "--no-fork")) {
            fork_each = 0;
        } else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "slope-bench: unknown or incomplete option \"%s\"\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (!any)
        for (int i = 0; i < NWL; i++) on[i] = 1;

    int failed = 0;
    for (int i = 0; i < NWL; i++) {
        if (!on[i]) continue;
        if (!fork_each) {
            failed |= run_one(&o, i);
            continue;
        }
        fflush(stdout);
        fflush(stderr);
        pid_t pid = fork();
        if (pid < 0) { /* no fork: run it here */
            failed |= run_one(&o, i);
            continue;
        }
        if (pid == 0) {
            int bad = run_one(&o, i);
            fflush(stdout);
            fflush(stderr);
            exit(bad ? 1 : 0); /* not _exit: LeakSanitizer runs at exit */
        }
        int st = 0;
        if (waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            if (WIFSIGNALED(st))
                fprintf(stderr, "slope-bench: %s died with signal %d\n", workloads[i].id,
                        WTERMSIG(st));
            else
                fprintf(stderr, "slope-bench: %s failed\n", workloads[i].id);
            failed = 1;
        }
    }
    if (failed) fprintf(stderr, "slope-bench: FAILED (see the messages above)\n");
    return failed ? 1 : 0;
}
