/*
 * test_train.c - training helpers: seeded Fisher-Yates shuffling (the
 * documented recipe, reproduced here), mini-batch iteration over epochs,
 * gathering rows, and the progress line (quiet in logs unless asked, \r
 * updates on a terminal, silent when told).
 */
#include "slope.h"
#include "testutil.h"

#include <criterion/criterion.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

/* The recipe of sl_shuffle, written from its documentation: j = x % (i+1),
 * redrawing while x >= 2^64 - (2^64 mod (i+1)). 2^64 mod m is computed as
 * (2^64 - 1) mod m, plus 1, mod m; x >= 2^64 - rem as x >= (2^64 - 1) - rem + 1. */
static void shuffle_ref(int *a, int n, uint64_t seed) {
    sl_rng r;
    sl_rng_seed(&r, seed);
    for (int i = n - 1; i > 0; i--) {
        uint64_t m = (uint64_t)i + 1, rem = (UINT64_MAX % m + 1) % m, x;
        do x = sl_rng_next(&r);
        while (rem != 0 && x >= UINT64_MAX - rem + 1);
        int j = (int)(x % m), t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}

Test(train, shuffle_is_the_documented_permutation) {
    enum { N = 50 };
    int a[N], b[N], seen[N] = {0};
    for (int i = 0; i < N; i++) a[i] = b[i] = i;
    sl_rng r;
    sl_rng_seed(&r, 123);
    sl_shuffle(a, N, &r);
    shuffle_ref(b, N, 123);
    cr_expect(memcmp(a, b, sizeof a) == 0);
    for (int i = 0; i < N; i++) seen[a[i]]++;
    for (int i = 0; i < N; i++) cr_expect_eq(seen[i], 1);
    int moved = 0;
    for (int i = 0; i < N; i++) moved += a[i] != i;
    cr_expect_gt(moved, N / 2);
    sl_shuffle(NULL, 3, &r); /* harmless */
    sl_shuffle(a, 0, &r);
}

/* For i+1 a power of two, 2^64 mod (i+1) = 0: the documented rule never
 * redraws (the code redrew the top i+1 values). From rng state
 * 0x4f10d6ffa9921217 (the seed is the state) the first draw is 2^64 - 2
 * (found by inverting splitmix64): shuffling [0, 1] takes
 * j = (2^64 - 2) % 2 = 0, swaps, and uses that one draw. */
Test(train, shuffle_never_redraws_for_a_power_of_two) {
    const uint64_t state = 0x4f10d6ffa9921217u;
    sl_rng r, one;
    sl_rng_seed(&r, state);
    one = r;
    cr_assert_eq(sl_rng_next(&one), UINT64_MAX - 1, "the premise: the first draw is 2^64 - 2");
    int a[2] = {0, 1}, ref[2] = {0, 1};
    sl_shuffle(a, 2, &r);
    cr_expect(a[0] == 1 && a[1] == 0, "[%d %d], want [1 0]", a[0], a[1]);
    cr_expect_eq(r.state, one.state, "sl_shuffle used more than the one draw");
    shuffle_ref(ref, 2, state);
    cr_expect(ref[0] == 1 && ref[1] == 0, "the reference: [%d %d]", ref[0], ref[1]);
}

Test(train, shuffle_is_uniform_enough) {
    /* where element 0 lands, over 60000 shuffles of 6: each place ~10000 */
    int count[6] = {0};
    sl_rng r;
    sl_rng_seed(&r, 1);
    for (int k = 0; k < 60000; k++) {
        int a[6] = {0, 1, 2, 3, 4, 5};
        sl_shuffle(a, 6, &r);
        for (int i = 0; i < 6; i++)
            if (a[i] == 0) count[i]++;
    }
    for (int i = 0; i < 6; i++)
        cr_expect(count[i] > 9500 && count[i] < 10500, "place %d: %d", i, count[i]);
}

Test(train, batches_cover_every_example_once_per_epoch) {
    sl_batches b;
    cr_assert_eq(sl_batches_init(&b, 10, 3, SL_BATCH_SHUFFLE, 7), SL_OK);
    int first[10], k = 0;
    for (int epoch = 0; epoch < 3; epoch++) {
        int seen[10] = {0}, sizes[5], nb = 0, m;
        const int *idx;
        int order[10];
        k = 0;
        while ((m = sl_batches_next(&b, &idx)) > 0) {
            sizes[nb++] = m;
            for (int i = 0; i < m; i++) {
                seen[idx[i]]++;
                order[k++] = idx[i];
            }
        }
        cr_expect_null(idx);
        cr_expect_eq(nb, 4);
        cr_expect(sizes[0] == 3 && sizes[1] == 3 && sizes[2] == 3 && sizes[3] == 1);
        for (int i = 0; i < 10; i++) cr_expect_eq(seen[i], 1);
        cr_expect_eq(b.epoch, epoch + 1);
        if (epoch == 0)
            memcpy(first, order, sizeof first);
        else
            cr_expect(memcmp(first, order, sizeof first) != 0, "a new order each epoch");
    }
    /* the first epoch's order is the shuffle of 0..9 with the seed */
    int ref[10] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
    shuffle_ref(ref, 10, 7);
    cr_expect(memcmp(first, ref, sizeof ref) == 0);
    sl_batches_free(&b);
    cr_expect_null(b.index);
    sl_batches_free(&b);
    sl_batches_free(NULL);
}

Test(train, batches_in_order_and_drop_last) {
    sl_batches b;
    const int *idx;
    cr_assert_eq(sl_batches_init(&b, 7, 3, SL_BATCH_DROP_LAST, 0), SL_OK);
    for (int epoch = 0; epoch < 2; epoch++) {
        cr_expect_eq(sl_batches_next(&b, &idx), 3);
        cr_expect(idx[0] == 0 && idx[2] == 2);
        cr_expect_eq(sl_batches_next(&b, &idx), 3);
        cr_expect(idx[0] == 3 && idx[2] == 5);
        cr_expect_eq(sl_batches_next(&b, &idx), 0, "the short batch [6] is dropped");
    }
    sl_batches_free(&b);
    /* one batch bigger than the data: the whole set */
    cr_assert_eq(sl_batches_init(&b, 4, 100, 0, 0), SL_OK);
    cr_expect_eq(sl_batches_next(&b, &idx), 4);
    cr_expect_eq(sl_batches_next(&b, &idx), 0);
    cr_expect_eq(sl_batches_next(&b, &idx), 4);
    sl_batches_free(&b);
}

Test(train, batches_bad_arguments) {
    sl_batches b;
    cr_expect_eq(sl_batches_init(&b, 0, 3, 0, 0), SL_EARG);
    cr_expect_eq(sl_batches_init(&b, 5, 0, 0, 0), SL_EARG);
    cr_expect_eq(sl_batches_init(&b, 5, 2, 8, 0), SL_EARG);
    cr_expect_eq(sl_batches_init(&b, 5, 6, SL_BATCH_DROP_LAST, 0), SL_EARG);
    cr_expect_null(b.index);
    cr_expect_eq(sl_batches_next(&b, NULL), 0);
    cr_expect_eq(sl_batches_init(NULL, 5, 2, 0, 0), SL_EARG);
    cr_expect_eq(sl_batches_next(NULL, NULL), 0);
}

Test(train, gather_rows) {
    double src[4 * 3], dst[2 * 3];
    for (int i = 0; i < 12; i++) src[i] = i;
    sl_gather_rows(dst, src, 3, (int[]){3, 1}, 2);
    double want[6] = {9, 10, 11, 3, 4, 5};
    cr_expect(memcmp(dst, want, sizeof want) == 0);
}

/* ----------------------------------------------------------- progress */

static char *contents(FILE *f) {
    static char buf[8192];
    fflush(f);
    rewind(f);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    return buf;
}

Test(train, progress_is_quiet_in_a_log_unless_asked) {
    FILE *f = tmpfile();
    sl_progress p;
    sl_progress_init(&p, f, 10, 0, 0);
    for (long s = 1; s <= 10; s++) sl_progress_update(&p, s, 1.0 / (double)s);
    sl_progress_finish(&p, 10, 0.1);
    cr_expect_str_eq(contents(f), "");
    fclose(f);
}

Test(train, progress_plain_lines_every_n_steps) {
    FILE *f = tmpfile();
    sl_progress p;
    sl_progress_init(&p, f, 10, 4, 0);
    for (long s = 1; s <= 10; s++) sl_progress_update(&p, s, 0.5);
    sl_progress_finish(&p, 10, 0.25);
    const char *out = contents(f);
    cr_expect(contains(out, "step 4/10  loss 0.5"), "%s", out);
    cr_expect(contains(out, "step 8/10  loss 0.5"), "%s", out);
    cr_expect(contains(out, "step 10/10  loss 0.25"), "%s", out);
    cr_expect(!contains(out, "step 5/10"), "%s", out);
    cr_expect(!contains(out, "\r"));
    int lines = 0;
    for (const char *c = out; *c; c++) lines += *c == '\n';
    cr_expect_eq(lines, 3, "%s", out);
    fclose(f);
}

Test(train, progress_on_a_terminal_rewrites_one_line) {
    FILE *f = tmpfile();
    sl_progress p;
    sl_progress_init(&p, f, 1000, 0, SL_PROGRESS_TTY);
    for (long s = 1; s <= 1000; s++) sl_progress_update(&p, s, 2.0);
    sl_progress_finish(&p, 1000, 1.5);
    const char *out = contents(f);
    cr_expect(out[0] == '\r', "%s", out);
    cr_expect(contains(out, "step 1/1000  loss 2"), "%s", out);
    cr_expect(contains(out, "step 1000/1000  loss 1.5"), "%s", out);
    cr_expect(contains(out, "steps/s"), "%s", out);
    cr_expect(contains(out, "elapsed"), "%s", out);
    size_t len = strlen(out);
    cr_expect(out[len - 1] == '\n' && !memchr(out, '\n', len - 1), "one line: %s", out);
    fclose(f);
}

Test(train, progress_quiet_and_null_file) {
    FILE *f = tmpfile();
    sl_progress p;
    sl_progress_init(&p, f, 10, 1, SL_PROGRESS_QUIET | SL_PROGRESS_TTY);
    for (long s = 1; s <= 10; s++) sl_progress_update(&p, s, 0.5);
    sl_progress_finish(&p, 10, 0.5);
    cr_expect_str_eq(contents(f), "");
    fclose(f);
    sl_progress_init(&p, NULL, 10, 1, SL_PROGRESS_TTY);
    sl_progress_update(&p, 1, 0.5);
    sl_progress_finish(&p, 1, 0.5);
    sl_progress_update(NULL, 1, 0.5);
    sl_progress_init(NULL, NULL, 0, 0, 0);
}

Test(train, progress_unknown_total) {
    FILE *f = tmpfile();
    sl_progress p;
    sl_progress_init(&p, f, 0, 1, 0);
    sl_progress_update(&p, 1, 3.0);
    sl_progress_update(&p, 2, 2.0);
    const char *out = contents(f);
    cr_expect(contains(out, "step 1  loss 3\n"), "%s", out);
    cr_expect(contains(out, "step 2  loss 2"), "%s", out);
    cr_expect(!contains(out, "left"), "%s", out);
    fclose(f);
}

/* The line shows the loss with %.6g, as the examples in nn.h and
 * docs/api-nn.md do: "step 1200/5000  loss 0.341237". */
Test(train, progress_loss_has_six_significant_digits) {
    FILE *f = tmpfile();
    sl_progress p;
    sl_progress_init(&p, f, 5000, 1200, 0);
    sl_progress_update(&p, 1200, 0.34123712);
    cr_expect_str_eq(contents(f), "step 1200/5000  loss 0.341237\n");
    fclose(f);
}

/* Steps anywhere in the range of long: the rate and the time left come from
 * differences of steps, which overflowed a long subtraction (undefined
 * behaviour, caught by UBSan) for steps near LONG_MIN or going back across
 * the range. */
Test(train, progress_with_extreme_steps) {
    FILE *f = tmpfile();
    sl_progress p;
    sl_progress_init(&p, f, 10, 1, 0);
    sl_progress_update(&p, LONG_MIN, 1.0);
    sl_progress_update(&p, LONG_MIN + 1, 0.5); /* 10 - step passes LONG_MAX */
    sl_progress_finish(&p, LONG_MIN + 1, 0.5);
    const char *out = contents(f);
    cr_expect(contains(out, "step -9223372036854775808/10  loss 1\n"), "%s", out);
    const char *second = strstr(out, "step -9223372036854775807/10  loss 0.5");
    cr_expect_not_null(second, "%s", out);
    if (second && contains(second, "steps/s")) /* 2^63 + 9 steps to go: unknown time */
        cr_expect(contains(second, "  ? left\n"), "%s", out);
    fclose(f);
    /* from LONG_MAX back to LONG_MIN: no progress, so no rate (not a wrapped 1 step) */
    f = tmpfile();
    sl_progress_init(&p, f, 0, 1, 0);
    sl_progress_update(&p, LONG_MAX, 1.0);
    sl_progress_update(&p, LONG_MIN, 1.0);
    out = contents(f);
    cr_expect_str_eq(out, "step 9223372036854775807  loss 1\nstep -9223372036854775808  loss 1\n");
    fclose(f);
}

Test(train, progress_finish_does_not_repeat_the_last_line) {
    FILE *f = tmpfile();
    sl_progress p;
    sl_progress_init(&p, f, 10, 5, 0);
    for (long s = 1; s <= 10; s++) sl_progress_update(&p, s, 0.5);
    sl_progress_finish(&p, 10, 0.5);
    const char *out = contents(f);
    int lines = 0;
    for (const char *c = out; *c; c++) lines += *c == '\n';
    cr_expect_eq(lines, 2, "%s", out);
    cr_expect(contains(out, "step 10/10  loss 0.5"), "%s", out);
    fclose(f);
}
