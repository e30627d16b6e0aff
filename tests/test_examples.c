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
#include <sys/wait.h>
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
    static const double ref[] = {0.6930480201239823,  0.2880832935690184, 0.25438549407324534,
                                 0.23386415038952202, 0.2267924874485401, 0.22264427549299018,
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
    cr_assert_eq(st, 0, "activations failed (a derivative differs from its closed form):\n%s", out);
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

/* ------------------------------------------------ the examples of issue 4 */

/* Each test writes into its own directory under the build tree, so two build
 * trees (or two tests) never share an output file. */
#define OUTDIR SLOPE_BINARY_DIR "/examples/test-out"

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0, got;
    char *s = malloc(cap);
    while ((got = fread(s + n, 1, cap - n - 1, f)) > 0)
        if ((n += got) == cap - 1) s = realloc(s, cap *= 2);
    s[n] = '\0';
    fclose(f);
    return s;
}

/* path exists, is an SVG document (opens with <svg, ends with </svg>) and
 * no temporary file is left beside it */
static void expect_svg(const char *path) {
    char *s = slurp(path);
    cr_assert_not_null(s, "%s was not written", path);
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == ' ')) n--;
    cr_expect(strncmp(s, "<svg", 4) == 0, "%s does not start with <svg", path);
    cr_expect(n >= 6 && strncmp(s + n - 6, "</svg>", 6) == 0, "%s does not end with </svg>", path);
    free(s);
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "r");
    cr_expect_null(f, "%s left behind", tmp);
    if (f) fclose(f);
}

/* The accuracy planar --sizes printed for n_h, or -1. */
static double size_accuracy(const char *out, int n_h) {
    for (const char *p = out; (p = strstr(p, "Accuracy for ")); p++) {
        int h;
        double acc;
        if (sscanf(p, "Accuracy for %d hidden units: %lf %%", &h, &acc) == 2 && h == n_h)
            return acc;
    }
    return -1;
}

/* planar --sizes on the listed sizes, output into OUTDIR/<dir>; checks the
 * table against want[] (exact for 1..5 units, a range for 20 and 50) */
static void planar_sizes(const char *dir, const int *sizes, int n) {
    static const struct {
        int n_h;
        double lo, hi;
    } want[] = {
        /* the course's recipe in NumPy on this data gives exactly these ... */
        {1, 67.5, 67.5},
        {2, 67.25, 67.25},
        {3, 90.75, 90.75},
        {4, 90.5, 90.5},
        {5, 91.25, 91.25},
        /* ... and 90.5, 90.75 for 20 and 50 units; the course reports 90.0 and
         * 90.25. With lr 1.2 these larger networks are chaotic late in the
         * run (a change of one ulp in a weight moves the result; see
         * WORKLOADS.md, W2), so the last digits depend on the summation order
         * of the matrix products: any accuracy in [90, 91] is the course's result. */
        {20, 90.0, 91.0},
        {50, 90.0, 91.0},
    };
    char cmd[1024], list[64] = "", path[1024];
    for (int k = 0; k < n; k++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%d", k ? "," : "", sizes[k]);
    snprintf(cmd, sizeof cmd, "mkdir -p %s/%s && %s --sizes %s --out %s/%s", OUTDIR, dir, PLANAR,
             list, OUTDIR, dir);
    int st;
    char *out = run(cmd, &st);
    cr_assert_eq(st, 0, "%s failed:\n%s", cmd, out);
    cr_expect(strstr(out, "5000 iterations each") != NULL, "%s", out);
    for (int k = 0; k < n; k++) {
        int w = 0;
        while (want[w].n_h != sizes[k]) w++;
        double acc = size_accuracy(out, sizes[k]);
        cr_expect(acc >= want[w].lo && acc <= want[w].hi,
                  "%d hidden units: accuracy %.2f %%, expected %s%.2f%s%.2f %%\n%s", sizes[k], acc,
                  want[w].lo == want[w].hi ? "" : "[", want[w].lo,
                  want[w].lo == want[w].hi ? " = " : ", ", want[w].hi, out);
        snprintf(path, sizeof path, "%s/%s/planar_h%d.svg", OUTDIR, dir, sizes[k]);
        expect_svg(path);
    }
    free(out);
}

/* split in two so that each stays short under the sanitizers */
Test(examples, planar_sizes_1_to_20_give_the_course_accuracies) {
    planar_sizes("planar-sizes-a", (int[]){1, 2, 3, 4, 5, 20}, 6);
}

Test(examples, planar_sizes_50_gives_the_course_accuracy) {
    planar_sizes("planar-sizes-b", (int[]){50}, 1);
}

Test(examples, planar_sizes_default_list_and_errors) {
    /* the default list is the course's; one iteration each is enough to see it */
    int st;
    char *out = run("mkdir -p " OUTDIR "/planar-sizes-c && " PLANAR
                    " --sizes --iters 1 --out " OUTDIR "/planar-sizes-c",
                    &st);
    cr_assert_eq(st, 0, "%s", out);
    static const int course[] = {1, 2, 3, 4, 5, 20, 50};
    for (int k = 0; k < 7; k++) {
        cr_expect(size_accuracy(out, course[k]) >= 0, "no line for %d units:\n%s", course[k], out);
        char path[1024];
        snprintf(path, sizeof path, OUTDIR "/planar-sizes-c/planar_h%d.svg", course[k]);
        expect_svg(path);
    }
    free(out);
    out = run(PLANAR " --sizes 3,x 2>&1", &st);
    cr_expect_neq(st, 0);
    cr_expect(strstr(out, "--sizes") != NULL, "%s", out);
    free(out);
    out = run(PLANAR " --sizes 7 --iters 1 --out /tmp 2>&1", &st);
    cr_expect_neq(st, 0);
    cr_expect(strstr(out, "no initial weights for n_h = 7") != NULL, "%s", out);
    free(out);
    out = run(PLANAR " --sizes 1 --iters 1 --out /nonexistent-dir 2>&1", &st);
    cr_expect_neq(st, 0);
    cr_expect(strstr(out, "/nonexistent-dir/planar_h1.svg") != NULL, "%s", out);
    free(out);
}

Test(examples, spiral_learns_saves_and_loads) {
    int st;
    /* stderr too: the progress line must stay quiet when it is not a terminal */
    char *out = run("mkdir -p " OUTDIR "/spiral && " SLOPE_BINARY_DIR
                    "/examples/spiral --out " OUTDIR "/spiral 2>&1",
                    &st);
    cr_assert_eq(st, 0, "spiral failed:\n%s", out);
    const char *a = strstr(out, "training accuracy: ");
    cr_assert_not_null(a, "%s", out);
    double acc = strtod(a + strlen("training accuracy: "), NULL);
    cr_expect_gt(acc, 95.0, "training accuracy %.2f %% <= 95 %%:\n%s", acc, out);
    cr_expect(strstr(out, "logits identical to the trained network's") != NULL, "%s", out);
    char want[64];
    snprintf(want, sizeof want, "after sl_params_load: accuracy %.2f %%", acc);
    cr_expect(strstr(out, want) != NULL, "missing \"%s\" in:\n%s", want, out);
    cr_expect(strstr(out, "step ") == NULL, "progress written to a pipe:\n%s", out);
    expect_svg(OUTDIR "/spiral/spiral_regions.svg");
    expect_svg(OUTDIR "/spiral/spiral_loss.svg");
    char *model = slurp(OUTDIR "/spiral/spiral.slp");
    cr_expect(model && strncmp(model, "SLOPEPRM", 8) == 0, "spiral.slp is not a parameter file");
    free(model);
    free(out);
}

Test(examples, xor_gets_all_four_right) {
    int st;
    char *out =
        run("mkdir -p " OUTDIR " && " SLOPE_BINARY_DIR "/examples/xor " OUTDIR "/xor.slp", &st);
    cr_assert_eq(st, 0, "xor failed:\n%s", out);
    static const char *lines[] = {"0 xor 0 = 0 ", "0 xor 1 = 1 ", "1 xor 0 = 1 ", "1 xor 1 = 0 "};
    for (int k = 0; k < 4; k++)
        cr_expect(strstr(out, lines[k]) != NULL, "no \"%s\":\n%s", lines[k], out);
    cr_expect(strstr(out, "WRONG") == NULL, "%s", out);
    cr_expect(strstr(out, "4 of 4 right") != NULL, "%s", out);
    cr_expect(strstr(out, "the same predictions") != NULL, "%s", out);
    free(out);
}

Test(examples, custom_op_passes_is_caught_and_trains) {
    int st;
    char *out = run(SLOPE_BINARY_DIR "/examples/custom_op", &st);
    cr_expect_eq(st, 0, "custom_op failed:\n%s", out);
    cr_expect(strstr(out, "sl_gradcheck_op(swish_beta): ok (SL_OK)") != NULL, "%s", out);
    cr_expect(strstr(out, "sl_gradcheck_op(swish_beta_wrong): FAILED (SL_EGRAD)") != NULL, "%s",
              out);
    cr_expect(strstr(out, "failed: \"vjp\"") != NULL, "the backward rule is named:\n%s", out);
    cr_expect(strstr(out, "the wrong backward was caught") != NULL, "%s", out);
    const char *s0 = strstr(out, "step   0  mse "), *s3 = strstr(out, "step 300  mse ");
    cr_assert(s0 && s3, "%s", out);
    double l0 = strtod(s0 + 14, NULL), l3 = strtod(s3 + 14, NULL);
    cr_expect_lt(l3, 0.1 * l0, "training loss %g -> %g", l0, l3);
    free(out);
}

/* Every code block in docs/tutorial.md announced by a line
 * "<!-- from examples/NAME.c -->" appears verbatim in that file. */
Test(examples, tutorial_excerpts_match_the_sources) {
    char *doc = slurp(SLOPE_SOURCE_DIR "/docs/tutorial.md");
    cr_assert_not_null(doc);
    int blocks = 0;
    for (const char *p = doc; (p = strstr(p, "<!-- from ")); p++) {
        char file[128];
        cr_assert_eq(sscanf(p, "<!-- from %127s -->", file), 1);
        char path[512];
        snprintf(path, sizeof path, "%s/%s", SLOPE_SOURCE_DIR, file);
        char *src = slurp(path);
        cr_assert_not_null(src, "tutorial cites %s, which does not exist", file);
        const char *b = strstr(p, "```c\n");
        cr_assert_not_null(b);
        b += 5;
        const char *e = strstr(b, "```");
        cr_assert_not_null(e);
        char *block = malloc((size_t)(e - b) + 1);
        memcpy(block, b, (size_t)(e - b));
        block[e - b] = '\0';
        cr_expect(strstr(src, block) != NULL, "this excerpt is not in %s:\n%s", file, block);
        free(block);
        free(src);
        blocks++;
    }
    cr_expect_geq(blocks, 4, "only %d excerpts marked in docs/tutorial.md", blocks);
    free(doc);
}

Test(examples, attention_checks_its_graph_and_learns_to_reverse) {
    int st;
    char *out = run(SLOPE_BINARY_DIR "/examples/attention --quiet", &st);
    cr_assert_eq(st, 0, "attention failed:\n%s", out);
    /* one Jacobian entry per parameter element: tok 8x16, pos 6x16, wq wk wv
     * 16x16 each, wo 16x8 */
    const int entries = 8 * 16 + 6 * 16 + 3 * 16 * 16 + 16 * 8;
    char want[96];
    snprintf(want, sizeof want, "gradient check of the whole model (6 parameters, %d entries): ok",
             entries);
    cr_expect(strstr(out, want) != NULL, "no \"%s\":\n%s", want, out);
    double tok = 0, seq = 0;
    const char *p = strstr(out, "reversed ");
    cr_assert(p && sscanf(p, "reversed %lf%% of the tokens, %lf%%", &tok, &seq) == 2, "%s", out);
    cr_expect(tok >= 99.0 && seq >= 95.0, "tokens %g%%, sequences %g%%", tok, seq);
    free(out);
    out = run(SLOPE_BINARY_DIR "/examples/attention --steps x 2>&1", &st);
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 2, "status %d: %s", st, out);
    cr_expect(strstr(out, "--steps takes") != NULL, "%s", out);
    free(out);
}
