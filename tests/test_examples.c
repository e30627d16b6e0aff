/*
 * test_examples.c - the examples run and print what their sources promise.
 *
 * planar: the course's published costs (0.693048 at iteration 0 ... 0.217504
 * at 7000), the reference run's 17-digit costs from NumPy and PyTorch
 * (shared/bench/WORKLOADS.md, W2; they agree to 4e-16 up to iteration 7700),
 * 90.5 or 90.75 % for the network (the run is chaotic after ~7700) and 47 %
 * for logistic regression.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PLANAR SLOPE_BINARY_DIR "/examples/planar"

/* Run cmd, return its whole stdout (malloc'd) and its exit status. */
static char *run(const char *cmd, int *status) {
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p, "cannot run %s", cmd);
    size_t cap = 1 << 16, n = 0;
    char *out = malloc(cap);
    size_t got;
    while ((got = fread(out + n, 1, cap - n - 1, p)) > 0) n += got;
    out[n] = '\0';
    *status = pclose(p);
    return out;
}

static double cost_at(const char *out, int iter) {
    char key[64];
    snprintf(key, sizeof key, "Cost after iteration %d: ", iter);
    const char *s = strstr(out, key);
    cr_assert_not_null(s, "no line \"%s\" in:\n%s", key, out);
    return strtod(s + strlen(key), NULL);
}

Test(examples, planar_prints_the_course_costs) {
    int st;
    char *out = run(PLANAR, &st);
    cr_assert_eq(st, 0, "planar failed:\n%s", out);
    static const char *course[] = {"0.693048", "0.288083", "0.254385", "0.233864",
                                   "0.226792", "0.222644", "0.219731", "0.217504"};
    for (int k = 0; k < 8; k++) {
        char line[64];
        snprintf(line, sizeof line, "Cost after iteration %d: %s\n", k * 1000, course[k]);
        cr_expect(strstr(out, line) != NULL, "missing \"%s\" in:\n%s", line, out);
    }
    const char *acc = strstr(out, "shallow network (4 tanh units): ");
    cr_assert_not_null(acc, "%s", out);
    cr_expect(strstr(acc, "90.50 %") == strchr(acc, ':') + 2 ||
                  strstr(acc, "90.75 %") == strchr(acc, ':') + 2,
              "network accuracy must be 90.5 or 90.75 %%:\n%s", out);
    cr_expect(strstr(out, "logistic regression:            47.00 %") != NULL, "%s", out);
    free(out);
}

Test(examples, planar_costs_match_the_reference_to_1e9) {
    static const double ref[] = {0.6930480201239823,  0.2880832935690184,  0.25438549407324534,
                                 0.23386415038952202, 0.2267924874485401,  0.22264427549299018,
                                 0.21973140404281322, 0.21750365405131297};
    int st;
    char *out = run(PLANAR " --precise --iters 7001", &st);
    cr_assert_eq(st, 0, "%s", out);
    for (int k = 0; k < 8; k++) {
        double c = cost_at(out, k * 1000);
        cr_expect(fabs(c - ref[k]) <= 1e-9 * ref[k], "iteration %d: %.17g vs %.17g", k * 1000, c,
                  ref[k]);
    }
    free(out);
}

Test(examples, planar_random_flower_and_bad_options) {
    int st;
    char *out = run(PLANAR " --random 7 --iters 3000", &st);
    cr_expect_eq(st, 0, "%s", out);
    cr_expect(strstr(out, "a new flower") != NULL, "%s", out);
    double c0 = cost_at(out, 0), c2 = cost_at(out, 2000);
    cr_expect(fabs(c0 - log(2.0)) < 1e-3, "tiny initial weights give cost ~ ln 2, got %g", c0);
    cr_expect(c2 < 0.5 * c0, "the network learns the new flower: %g -> %g", c0, c2);
    free(out);
    out = run(PLANAR " --iters abc 2>&1", &st);
    cr_expect_neq(st, 0);
    cr_expect(strstr(out, "--iters") != NULL, "%s", out);
    free(out);
    out = run(PLANAR " --data /nonexistent.csv 2>&1", &st);
    cr_expect_neq(st, 0);
    cr_expect(strstr(out, "/nonexistent.csv") != NULL, "%s", out);
    free(out);
}

Test(examples, first_matches_its_closed_forms_and_checks) {
    int st;
    char *out = run(SLOPE_BINARY_DIR "/examples/first", &st);
    cr_assert_eq(st, 0, "%s", out);
    /* f = sum tanh(0.7 x) + 0.49 at x = (-1, 0.5, 2), computed here independently */
    char want[64];
    snprintf(want, sizeof want, "f = %.6f\n", tanh(-0.7) + tanh(0.35) + tanh(1.4) + 0.49);
    cr_expect(strstr(out, want) != NULL, "missing \"%s\" in:\n%s", want, out);
    snprintf(want, sizeof want, "df/dx[2] = %.6f", 0.7 * (1 - tanh(1.4) * tanh(1.4)));
    cr_expect(strstr(out, want) != NULL, "missing \"%s\" in:\n%s", want, out);
    cr_expect(strstr(out, "gradcheck: ok, 4 entries") != NULL, "%s", out);
    free(out);
}

Test(examples, activations_backward_equals_closed_forms) {
    char cmd[512];
    const char *svg = "/tmp/slope-test-activations.svg";
    snprintf(cmd, sizeof cmd, "%s/examples/activations -o %s", SLOPE_BINARY_DIR, svg);
    int st;
    char *out = run(cmd, &st);
    cr_assert_eq(st, 0, "activations failed (a derivative differs from its closed form):\n%s",
                 out);
    cr_expect(strstr(out, "sigmoid") && strstr(out, "log_sigmoid") && strstr(out, "gelu"), "%s",
              out);
    FILE *f = fopen(svg, "r");
    cr_assert_not_null(f);
    static char buf[1 << 22];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    cr_expect(strncmp(buf, "<svg", 4) == 0);
    int polylines = 0;
    for (const char *p = buf; (p = strstr(p, "<polyline")); p++) polylines++;
    cr_expect_geq(polylines, 30, "10 panels x 3 curves, got %d", polylines);
    remove(svg);
    free(out);
}
