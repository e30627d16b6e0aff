/*
 * test_io.c - saving and loading parameter stores (docs/format.md): the
 * exact bytes of a small file, bit-exact round trips (NaN payloads, -0,
 * infinities, subnormals), and every way a file can be wrong - each
 * truncation length, each flipped byte, wrong magic, version, name or shape,
 * a missing file - each a clear error that leaves the store bit for bit as
 * it was. Saving never damages the previous file.
 */
#define _POSIX_C_SOURCE 200809L /* mkdtemp, getpid, symlink, lstat, setrlimit */
#include "nn/nn_internal.h"     /* sl__crc32 */
#include "slope.h"
#include "testutil.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <threads.h>
#include <unistd.h>

/* ------------------------------------------------------------- helpers */

static char dir[256];

static void make_dir(void) {
    snprintf(dir, sizeof dir, "/tmp/slope_io_XXXXXX");
    cr_assert_not_null(mkdtemp(dir), "mkdtemp: %s", strerror(errno));
}

/* Remove path and, if it is a directory, everything under it. */
static void remove_tree(const char *path) {
    DIR *dp = opendir(path);
    if (dp) {
        struct dirent *e;
        while ((e = readdir(dp))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            char sub[1024];
            snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
            remove_tree(sub);
        }
        closedir(dp);
        rmdir(path);
    } else {
        remove(path);
    }
}

/* Each test makes its own directory; the suite's fini removes it. */
static void cleanup(void) {
    if (dir[0]) {
        chmod(dir, 0700);
        remove_tree(dir);
    }
}
TestSuite(io, .fini = cleanup);

static const char *in_dir(const char *name) {
    static char buf[4][1024];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
    return buf[k];
}

static unsigned char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "open %s: %s", path, strerror(errno));
    static unsigned char buf[1 << 16];
    *n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    unsigned char *out = malloc(*n + 1);
    memcpy(out, buf, *n);
    return out;
}

static void spit(const char *path, const unsigned char *b, size_t n) {
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(b, 1, n, f), n);
    fclose(f);
}

/* A bitwise CRC-32 (no table), to check the library's table-driven one. */
static uint32_t crc_bitwise(const unsigned char *b, size_t n) {
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        c ^= b[i];
        for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ 0xEDB88320u : c >> 1;
    }
    return ~c;
}

static void put_crc(unsigned char *b, size_t n) { /* rewrite the trailing CRC of a file image */
    uint32_t c = crc_bitwise(b, n - 4);
    for (int i = 0; i < 4; i++) b[n - 4 + i] = (unsigned char)(c >> (8 * i));
}

/* Every value of the store, in order, as raw bytes. */
static size_t snapshot(sl_params *ps, unsigned char *out) {
    size_t n = 0;
    for (sl_param *p = sl_params_next(ps, NULL); p; p = sl_params_next(ps, p)) {
        memcpy(out + n, sl_param_value(p), sl_param_numel(p) * sizeof(double));
        n += sl_param_numel(p) * sizeof(double);
        memcpy(out + n, sl_param_grad(p), sl_param_numel(p) * sizeof(double));
        n += sl_param_numel(p) * sizeof(double);
    }
    return n;
}

/* "a" [3], "bb" [2,2], "s" [] (a scalar) with distinct values. */
static sl_params *small_store(double shift) {
    sl_params *ps = sl_params_new();
    sl_param *a = sl_param_new(ps, "a", 1, (int[]){3}, NULL);
    sl_param *b = sl_param_new(ps, "bb", 2, (int[]){2, 2}, NULL);
    sl_param *s = sl_param_new(ps, "s", 0, NULL, NULL);
    cr_assert(a && b && s);
    for (int i = 0; i < 3; i++) sl_param_value(a)[i] = shift + 0.25 * i;
    for (int i = 0; i < 4; i++) sl_param_value(b)[i] = shift - 1.5 * i;
    sl_param_value(s)[0] = shift * 3;
    for (sl_param *p = sl_params_next(ps, NULL); p; p = sl_params_next(ps, p))
        sl_param_grad(p)[0] = shift + 100; /* load must leave gradients alone */
    return ps;
}

/* Loading path into ps fails with status and a message containing needle;
 * ps is bit for bit unchanged (values and gradients). */
static void expect_load_into_fails(sl_params *ps, const char *path, int status,
                                   const char *needle) {
    static unsigned char before[4096], after[4096];
    size_t n = snapshot(ps, before);
    int rc = sl_params_load(ps, path);
    cr_expect_eq(rc, status, "load %s: %s, want %s (%s)", path, sl_status_name(rc),
                 sl_status_name(status), sl_params_error(ps));
    const char *m = sl_params_error(ps);
    cr_expect(contains(m, "sl_params_load") && contains(m, path) && contains(m, needle),
              "message \"%s\" lacks \"%s\"", m, needle);
    cr_expect_eq(snapshot(ps, after), n);
    cr_expect(memcmp(before, after, n) == 0, "the store changed (%s)", needle);
}

/* The same with a fresh small store. */
static void expect_load_fails(const char *path, int status, const char *needle) {
    sl_params *ps = small_store(7.0);
    expect_load_into_fails(ps, path, status, needle);
    sl_params_free(ps);
}

/* --------------------------------------------------------------- format */

Test(io, crc32_known_answer) {
    cr_expect_eq(sl__crc32(0, "123456789", 9), 0xCBF43926u);
    cr_expect_eq(sl__crc32(0, "", 0), 0u);
    /* in pieces */
    uint32_t c = sl__crc32(0, "1234", 4);
    cr_expect_eq(sl__crc32(c, "56789", 5), 0xCBF43926u);
    unsigned char all[256];
    for (int i = 0; i < 256; i++) all[i] = (unsigned char)i;
    cr_expect_eq(sl__crc32(0, all, 256), crc_bitwise(all, 256));
}

Test(io, exact_bytes_of_a_small_file) {
    make_dir();
    sl_params *ps = sl_params_new();
    sl_param_new(ps, "w", 1, (int[]){2}, (double[]){1.0, -2.0});
    sl_param_new(ps, "xy", 2, (int[]){1, 1}, (double[]){0.5});
    const char *path = in_dir("small.slp");
    cr_assert_eq(sl_params_save(ps, path), SL_OK, "%s", sl_params_error(ps));
    cr_expect_null(sl_params_error(ps));
    static const unsigned char want[] = {
        'S', 'L', 'O', 'P', 'E', 'P', 'R',  'M',     /* magic */
        1,   0,   0,   0,                            /* version 1 */
        2,   0,   0,   0,                            /* 2 parameters */
        1,   0,   'w',                               /* name length 1, "w" */
        1,                                           /* ndim 1 */
        2,   0,   0,   0,                            /* dims[0] = 2 */
        0,   0,   0,   0,   0,   0,   0xF0, 0x3F,    /* 1.0 = 0x3FF0000000000000 */
        0,   0,   0,   0,   0,   0,   0,    0xC0,    /* -2.0 = 0xC000000000000000 */
        2,   0,   'x', 'y',                          /* "xy" */
        2,   1,   0,   0,   0,   1,   0,    0,    0, /* ndim 2, [1,1] */
        0,   0,   0,   0,   0,   0,   0xE0, 0x3F,    /* 0.5 = 0x3FE0000000000000 */
    };
    size_t n;
    unsigned char *got = slurp(path, &n);
    cr_assert_eq(n, sizeof want + 4, "file size %zu", n);
    cr_expect(memcmp(got, want, sizeof want) == 0);
    uint32_t crc = crc_bitwise(want, sizeof want);
    for (int i = 0; i < 4; i++) cr_expect_eq(got[sizeof want + i], (unsigned char)(crc >> (8 * i)));
    free(got);
    sl_params_free(ps);
}

Test(io, round_trip_is_bit_exact) {
    make_dir();
    sl_params *ps = sl_params_new();
    sl_rng r;
    sl_rng_seed(&r, 99);
    sl_param_new_init(ps, "layer.0.W", 2, (int[]){7, 5}, (sl_init){.kind = SL_INIT_NORMAL, .b = 1},
                      &r);
    sl_param_new_init(ps, "t4", 4, (int[]){2, 1, 3, 2},
                      (sl_init){.kind = SL_INIT_UNIFORM, .a = -1e300, .b = 1e300}, &r);
    sl_param *sp = sl_param_new(ps, "special", 1, (int[]){8}, NULL);
    sl_param_new(ps, "scalar", 0, NULL, (double[]){3.141592653589793});
    uint64_t payload_nan = 0x7FF8DEADBEEF0001ull;
    double special[8] = {
        -0.0, INFINITY, -INFINITY, 4.9e-324, -2.2250738585072014e-308, 1.7976931348623157e308,
        0,    0};
    memcpy(&special[6], &payload_nan, 8);
    special[7] = -NAN;
    memcpy(sl_param_value(sp), special, sizeof special);
    const char *path = in_dir("rt.slp");
    cr_assert_eq(sl_params_save(ps, path), SL_OK, "%s", sl_params_error(ps));
    /* same names and shapes, other values, other insertion order */
    sl_params *qs = sl_params_new();
    sl_param_new(qs, "scalar", 0, NULL, NULL);
    sl_param_new(qs, "special", 1, (int[]){8}, NULL);
    sl_param_new(qs, "t4", 4, (int[]){2, 1, 3, 2}, NULL);
    sl_param_new(qs, "layer.0.W", 2, (int[]){7, 5}, NULL);
    cr_assert_eq(sl_params_load(qs, path), SL_OK, "%s", sl_params_error(qs));
    cr_expect_null(sl_params_error(qs));
    for (sl_param *p = sl_params_next(ps, NULL); p; p = sl_params_next(ps, p)) {
        sl_param *q = sl_params_get(qs, sl_param_name(p));
        cr_expect(memcmp(sl_param_value(p), sl_param_value(q), sl_param_numel(p) * 8) == 0,
                  "%s differs", sl_param_name(p));
    }
    /* save -> load -> save gives the same bytes (same insertion order) */
    sl_params *rs = sl_params_new();
    for (sl_param *p = sl_params_next(ps, NULL); p; p = sl_params_next(ps, p))
        sl_param_new(rs, sl_param_name(p), sl_param_ndim(p), sl_param_dims(p), NULL);
    cr_assert_eq(sl_params_load(rs, path), SL_OK);
    cr_assert_eq(sl_params_save(rs, in_dir("rt2.slp")), SL_OK);
    size_t n1, n2;
    unsigned char *b1 = slurp(path, &n1), *b2 = slurp(in_dir("rt2.slp"), &n2);
    cr_expect(n1 == n2 && memcmp(b1, b2, n1) == 0);
    free(b1);
    free(b2);
    sl_params_free(ps);
    sl_params_free(qs);
    sl_params_free(rs);
}

Test(io, empty_store_round_trips) {
    make_dir();
    sl_params *ps = sl_params_new();
    cr_assert_eq(sl_params_save(ps, in_dir("e.slp")), SL_OK);
    size_t n;
    free(slurp(in_dir("e.slp"), &n));
    cr_expect_eq(n, 20);
    cr_expect_eq(sl_params_load(ps, in_dir("e.slp")), SL_OK, "%s", sl_params_error(ps));
    sl_params_free(ps);
}

Test(io, load_keeps_gradients_and_replaces_values) {
    make_dir();
    sl_params *src = small_store(1.0), *dst = small_store(2.0);
    cr_assert_eq(sl_params_save(src, in_dir("g.slp")), SL_OK);
    cr_assert_eq(sl_params_load(dst, in_dir("g.slp")), SL_OK);
    sl_param *a = sl_params_get(dst, "a");
    cr_expect_eq(sl_param_value(a)[2], 1.5);
    cr_expect_eq(sl_param_grad(a)[0], 102.0);
    sl_params_free(src);
    sl_params_free(dst);
}

/* ---------------------------------------------------------- bad files */

Test(io, every_truncation_is_an_error) {
    make_dir();
    sl_params *ps = small_store(1.0);
    const char *good = in_dir("good.slp"), *cut = in_dir("cut.slp");
    cr_assert_eq(sl_params_save(ps, good), SL_OK);
    size_t n;
    unsigned char *b = slurp(good, &n);
    for (size_t len = 0; len < n; len++) {
        spit(cut, b, len);
        expect_load_fails(cut, SL_EFORMAT, "truncated");
    }
    free(b);
    sl_params_free(ps);
}

Test(io, every_flipped_byte_is_an_error) {
    make_dir();
    sl_params *ps = small_store(1.0);
    const char *good = in_dir("good.slp"), *bad = in_dir("flip.slp");
    cr_assert_eq(sl_params_save(ps, good), SL_OK);
    size_t n;
    unsigned char *b = slurp(good, &n);
    static const unsigned char masks[] = {0x01, 0x10, 0x80, 0xFF};
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < sizeof masks; k++) {
            b[i] ^= masks[k];
            spit(bad, b, n);
            expect_load_fails(bad, SL_EFORMAT, "");
            b[i] ^= masks[k];
        }
    /* a flipped value byte is caught by the checksum */
    b[40] ^= 0x04;
    spit(bad, b, n);
    expect_load_fails(bad, SL_EFORMAT, "checksum mismatch");
    free(b);
    sl_params_free(ps);
}

Test(io, wrong_magic_version_and_trailing_bytes) {
    make_dir();
    sl_params *ps = small_store(1.0);
    const char *good = in_dir("good.slp"), *bad = in_dir("bad.slp");
    cr_assert_eq(sl_params_save(ps, good), SL_OK);
    size_t n;
    unsigned char *b = slurp(good, &n);
    unsigned char *c = malloc(n + 8);
    memcpy(c, b, n);
    c[0] = 'X';
    spit(bad, c, n);
    expect_load_fails(bad, SL_EFORMAT, "bad magic");
    spit(bad, (const unsigned char *)"hello, world\n", 13);
    expect_load_fails(bad, SL_EFORMAT, "not a slope parameter file");
    memcpy(c, b, n);
    c[8] = 2; /* version 2, with a valid checksum */
    put_crc(c, n);
    spit(bad, c, n);
    expect_load_fails(bad, SL_EFORMAT, "format version 2, this slope reads version 1");
    /* bytes appended after the checksum */
    memcpy(c, b, n);
    memcpy(c + n, "\0\0\0\0", 4);
    put_crc(c, n + 4);
    spit(bad, c, n + 4);
    expect_load_fails(bad, SL_EFORMAT, "4 extra bytes after the last of 3 parameters");
    /* a huge count with a valid checksum: truncated, not a crash */
    memcpy(c, b, n);
    c[12] = c[13] = c[14] = c[15] = 0xFF;
    put_crc(c, n);
    spit(bad, c, n);
    expect_load_fails(bad, SL_EFORMAT, "truncated");
    /* an absurd dim with a valid checksum */
    memcpy(c, b, n);
    c[16 + 2 + 1 + 1 + 3] = 0x7F; /* "a": dims[0] high byte */
    put_crc(c, n);
    spit(bad, c, n);
    expect_load_fails(bad, SL_EFORMAT, "truncated");
    free(b);
    free(c);
    sl_params_free(ps);
}

/* A store like small_store with other names or shapes: name/dims per entry. */
static sl_params *store_of(int n, const char *const *names, const int (*shapes)[3]) {
    sl_params *ps = sl_params_new();
    for (int k = 0; k < n; k++) {
        sl_param *p = sl_param_new(ps, names[k], shapes[k][0], &shapes[k][1], NULL);
        cr_assert_not_null(p, "%s", sl_params_error(ps));
        for (size_t i = 0; i < sl_param_numel(p); i++) {
            sl_param_value(p)[i] = 9.5 + (double)k - (double)i;
            sl_param_grad(p)[i] = -1.0 - (double)i;
        }
    }
    return ps;
}

Test(io, name_and_shape_mismatches) {
    make_dir();
    const char *path = in_dir("m.slp");
    /* the file: a [3], bb [2,2], s [] */
    sl_params *ps = small_store(1.0);
    cr_assert_eq(sl_params_save(ps, path), SL_OK);
    sl_params_free(ps);
    static const struct {
        int n;
        const char *names[4];
        int shapes[4][3]; /* rank, dims */
        const char *needle;
    } cases[] = {
        /* wrong shape: the message names the parameter and both shapes */
        {3,
         {"a", "bb", "s"},
         {{1, 3}, {2, 4, 1}, {0}},
         "\"bb\" has shape [2,2] in the file but [4,1] in the store"},
        {3, {"a", "bb", "s"}, {{1, 3}, {1, 4}, {0}}, "[2,2] in the file but [4] in the store"},
        {3,
         {"a", "bb", "s"},
         {{1, 3}, {2, 2, 2}, {1, 1}},
         "\"s\" has shape [] in the file but [1] in the store"},
        /* a name the store lacks (same count) */
        {3,
         {"a", "cc", "s"},
         {{1, 3}, {2, 2, 2}, {0}},
         "\"bb\" [2,2] is in the file but not in the store"},
        /* the store has a parameter the file lacks */
        {4,
         {"a", "bb", "s", "extra"},
         {{1, 3}, {2, 2, 2}, {0}, {1, 1}},
         "\"extra\" [1] of the store is not in the file"},
        /* the file has more than the store */
        {2, {"a", "s"}, {{1, 3}, {0}}, "\"bb\" [2,2] is in the file but not in the store"},
        /* names differ only in case */
        {3,
         {"A", "bb", "s"},
         {{1, 3}, {2, 2, 2}, {0}},
         "\"a\" [3] is in the file but not in the store"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        sl_params *qs = store_of(cases[c].n, cases[c].names, cases[c].shapes);
        expect_load_into_fails(qs, path, SL_EFORMAT, cases[c].needle);
        sl_params_free(qs);
    }
    /* and the matching store (other insertion order) loads */
    static const char *const names[3] = {"s", "bb", "a"};
    static const int shapes[3][3] = {{0}, {2, 2, 2}, {1, 3}};
    sl_params *qs = store_of(3, names, shapes);
    cr_expect_eq(sl_params_load(qs, path), SL_OK, "%s", sl_params_error(qs));
    cr_expect_eq(sl_param_value(sl_params_get(qs, "a"))[1], 1.25);
    cr_expect_eq(sl_param_grad(sl_params_get(qs, "a"))[1], -2.0, "gradients untouched");
    sl_params_free(qs);
}

Test(io, duplicate_name_in_file) {
    make_dir();
    sl_params *ps = sl_params_new();
    sl_param_new(ps, "p", 1, (int[]){1}, (double[]){1});
    sl_param_new(ps, "q", 1, (int[]){1}, (double[]){2});
    const char *path = in_dir("d.slp");
    cr_assert_eq(sl_params_save(ps, path), SL_OK);
    size_t n;
    unsigned char *b = slurp(path, &n);
    /* record 2's name byte: header 16 + record 1 (2+1+1+4+8 = 16) + 2 */
    cr_assert_eq(b[34], 'q');
    b[34] = 'p';
    put_crc(b, n);
    spit(path, b, n);
    expect_load_into_fails(ps, path, SL_EFORMAT, "\"p\" appears twice");
    free(b);
    sl_params_free(ps);
}

Test(io, missing_file_is_eio) {
    make_dir();
    const char *path = in_dir("nope.slp");
    expect_load_fails(path, SL_EIO, "No such file");
    expect_load_fails(dir, SL_EIO, ""); /* a directory: opens, but reading fails */
    sl_params *ps = sl_params_new();
    cr_expect_eq(sl_params_load(ps, NULL), SL_EARG);
    cr_expect_eq(sl_params_save(ps, ""), SL_EARG);
    cr_expect_eq(sl_params_load(NULL, path), SL_EARG);
    cr_expect_eq(sl_params_save(NULL, path), SL_EARG);
    sl_params_free(ps);
}

/* ------------------------------------------------------------ saving */

static int count_entries(const char *d) {
    DIR *dp = opendir(d);
    cr_assert_not_null(dp);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(dp)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(dp);
    return n;
}

Test(io, save_leaves_no_temporary_file) {
    make_dir();
    sl_params *ps = small_store(1.0);
    cr_assert_eq(sl_params_save(ps, in_dir("x.slp")), SL_OK);
    cr_assert_eq(sl_params_save(ps, in_dir("x.slp")), SL_OK); /* over an existing file */
    cr_expect_eq(count_entries(dir), 1);
    sl_params_free(ps);
}

/* The bytes of the file at path equal want[0..n-1]. */
static bool file_is(const char *path, const unsigned char *want, size_t n) {
    size_t got_n;
    unsigned char *got = slurp(path, &got_n);
    bool same = got_n == n && memcmp(got, want, n) == 0;
    free(got);
    return same;
}

/* The temporary file cannot be created (the "directory" is a regular file,
 * which fails even as root), the rename fails (the target is a non-empty
 * directory), the directory does not exist: SL_EIO naming the path and the
 * reason, the old file intact, no temporary file left. */
Test(io, failed_save_keeps_the_old_file) {
    make_dir();
    const char *path = in_dir("model.slp");
    sl_params *old = small_store(1.0), *next = small_store(5.0);
    cr_assert_eq(sl_params_save(old, path), SL_OK);
    size_t n0;
    unsigned char *before = slurp(path, &n0);
    const char *under_file = in_dir("model.slp/x.slp");
    cr_expect_eq(sl_params_save(next, under_file), SL_EIO);
    const char *m = sl_params_error(next);
    cr_expect(contains(m, "sl_params_save") && contains(m, under_file) &&
                  contains(m, "cannot create a temporary file") && contains(m, "Not a directory"),
              "%s", m);
    cr_expect(file_is(path, before, n0), "the old file changed");
    /* rename fails (the target is a non-empty directory): temp file removed */
    const char *dpath = in_dir("adir");
    cr_assert_eq(mkdir(dpath, 0700), 0);
    spit(in_dir("adir/keep"), (const unsigned char *)"x", 1);
    cr_expect_eq(sl_params_save(next, dpath), SL_EIO);
    m = sl_params_error(next);
    cr_expect(contains(m, "cannot rename") && contains(m, "Is a directory"), "%s", m);
    cr_expect_eq(count_entries(dir), 2, "model.slp and adir only: no temporary file left");
    /* a directory that does not exist */
    cr_expect_eq(sl_params_save(next, in_dir("no/such/dir.slp")), SL_EIO);
    cr_expect(contains(sl_params_error(next), "No such file or directory"), "%s",
              sl_params_error(next));
    free(before);
    sl_params_free(old);
    sl_params_free(next);
}

/* Writing fails midway (a file size limit of 4 KiB, which binds root
 * too): SL_EIO with the reason, the old file intact, the temporary removed. */
Test(io, failed_write_keeps_the_old_file_and_removes_the_temporary) {
    make_dir();
    const char *path = in_dir("model.slp");
    sl_params *old = small_store(1.0), *big = sl_params_new();
    cr_assert_not_null(sl_param_new(big, "w", 1, (int[]){1000}, NULL)); /* 8000+ bytes */
    cr_assert_eq(sl_params_save(old, path), SL_OK);
    size_t n0;
    unsigned char *before = slurp(path, &n0);
    cr_assert_lt(n0, 4096);
    struct rlimit was, lim;
    cr_assert_eq(getrlimit(RLIMIT_FSIZE, &was), 0);
    lim = was;
    lim.rlim_cur = 4096;
    signal(SIGXFSZ, SIG_IGN); /* write fails with EFBIG instead of killing the process */
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
    int rc = sl_params_save(big, path);
    setrlimit(RLIMIT_FSIZE, &was);
    cr_expect_eq(rc, SL_EIO, "%s", sl_status_name(rc));
    const char *m = sl_params_error(big);
    cr_expect(contains(m, path) && contains(m, "cannot write") && contains(m, "File too large"),
              "%s", m);
    cr_expect(file_is(path, before, n0), "the old file changed");
    cr_expect_eq(count_entries(dir), 1, "model.slp only: the temporary file was removed");
    free(before);
    sl_params_free(old);
    sl_params_free(big);
}

/* The temporary file was "<path>.tmp.<pid>", opened with fopen: a symlink
 * planted at that name made the save write through it into the link's
 * target. The temporary is now a new file (O_EXCL) under an unpredictable
 * name; the planted link and its target stay as they are. */
Test(io, save_does_not_write_through_a_planted_symlink) {
    make_dir();
    const char *victim = in_dir("victim.txt"), *path = in_dir("model.slp");
    static const unsigned char precious[] = "precious data\n";
    spit(victim, precious, sizeof precious - 1);
    char link[600];
    snprintf(link, sizeof link, "%s.tmp.%ld", path, (long)getpid());
    cr_assert_eq(symlink(victim, link), 0, "symlink: %s", strerror(errno));
    sl_params *ps = small_store(2.0), *back = small_store(0.0);
    cr_assert_eq(sl_params_save(ps, path), SL_OK, "%s", sl_params_error(ps));
    cr_expect(file_is(victim, precious, sizeof precious - 1), "the link's target was written");
    struct stat st;
    cr_expect(lstat(path, &st) == 0 && S_ISREG(st.st_mode), "model.slp is not a regular file");
    cr_expect(lstat(link, &st) == 0 && S_ISLNK(st.st_mode), "the planted link is gone");
    cr_expect_eq(sl_params_load(back, path), SL_OK, "%s", sl_params_error(back));
    cr_expect_eq(sl_param_value(sl_params_get(back, "s"))[0], 6.0);
    cr_expect_eq(count_entries(dir), 3, "victim, link, model: no temporary file left");
    sl_params_free(ps);
    sl_params_free(back);
}

/* The saved file gets the permissions of any new file, 0666 less the umask
 * (not mkstemp's 0600), whatever the mode of the file it replaces. */
Test(io, saved_file_has_the_mode_of_a_new_file) {
    make_dir();
    const char *path = in_dir("m.slp");
    spit(path, (const unsigned char *)"x", 1);
    cr_assert_eq(chmod(path, 0600), 0);
    umask(027);
    sl_params *ps = small_store(1.0);
    cr_assert_eq(sl_params_save(ps, path), SL_OK, "%s", sl_params_error(ps));
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_expect_eq(st.st_mode & 0777, 0640, "mode %o", (unsigned)(st.st_mode & 0777));
    sl_params_free(ps);
}

/* Two threads save different stores to one path while a third loads it:
 * with one shared temporary name the writes interleaved and the renamed
 * file could be a mix, or still being written. Every load must now give
 * one of the two stores exactly. */
enum { SAVES = 60 };
static sl_params *store_a, *store_b;
static atomic_int save_failures;

static int save_a(void *arg) {
    for (int i = 0; i < SAVES; i++) save_failures += sl_params_save(store_a, arg) != SL_OK;
    return 0;
}
static int save_b(void *arg) {
    for (int i = 0; i < SAVES; i++) save_failures += sl_params_save(store_b, arg) != SL_OK;
    return 0;
}

/* 1 when path holds exactly store A ("w", 5000 values k), 2 for store B
 * ("w", 3000 values -k), 0 for anything else. */
static int which_store_of(const char *path, sl_params *as_a, sl_params *as_b) {
    if (sl_params_load(as_a, path) == SL_OK) {
        const double *v = sl_param_value(sl_params_get(as_a, "w"));
        for (int k = 0; k < 5000; k++)
            if (v[k] != k) return 0;
        return 1;
    }
    if (sl_params_load(as_b, path) == SL_OK) {
        const double *v = sl_param_value(sl_params_get(as_b, "w"));
        for (int k = 0; k < 3000; k++)
            if (v[k] != -k) return 0;
        return 2;
    }
    return 0;
}

/* The same for the file at shared now, looked at through a hard link: both
 * loads read that file even if shared is replaced in between. (link fails
 * with ENOENT when a rename replaces its source in the middle: try again.) */
static int which_store(const char *shared, sl_params *as_a, sl_params *as_b) {
    const char *path = in_dir("snapshot.slp");
    int rc, tries = 0;
    while ((rc = link(shared, path)) != 0 && errno == ENOENT && ++tries < 1000) continue;
    cr_assert_eq(rc, 0, "link: %s", strerror(errno));
    int k = which_store_of(path, as_a, as_b);
    unlink(path);
    return k;
}

static sl_params *store_w(int n, double sign) {
    sl_params *ps = sl_params_new();
    sl_param *w = sl_param_new(ps, "w", 1, (int[]){n}, NULL);
    cr_assert_not_null(w);
    for (int k = 0; k < n; k++) sl_param_value(w)[k] = sign * k;
    return ps;
}

Test(io, concurrent_saves_to_one_path_leave_one_whole_store) {
    make_dir();
    char path[512];
    snprintf(path, sizeof path, "%s", in_dir("shared.slp"));
    store_a = store_w(5000, 1);
    store_b = store_w(3000, -1);
    sl_params *as_a = store_w(5000, 0), *as_b = store_w(3000, 0);
    cr_assert_eq(sl_params_save(store_a, path), SL_OK);
    int mixed = 0, loads = 0, seen[3] = {0};
    for (int round = 0; round < 5; round++) {
        thrd_t ta, tb;
        cr_assert_eq(thrd_create(&ta, save_a, path), thrd_success);
        cr_assert_eq(thrd_create(&tb, save_b, path), thrd_success);
        for (int i = 0; i < 50; i++, loads++) { /* while they save */
            int k = which_store(path, as_a, as_b);
            mixed += k == 0;
            seen[k]++;
        }
        thrd_join(ta, NULL);
        thrd_join(tb, NULL);
        int k = which_store(path, as_a, as_b); /* and after */
        mixed += k == 0;
        seen[k]++;
        loads++;
    }
    cr_expect_eq(save_failures, 0);
    cr_expect_eq(mixed, 0, "%d of %d loads found neither store (%d A, %d B)", mixed, loads, seen[1],
                 seen[2]);
    cr_expect_eq(count_entries(dir), 1, "shared.slp only: no temporary file left");
    sl_params_free(store_a);
    sl_params_free(store_b);
    sl_params_free(as_a);
    sl_params_free(as_b);
}

/* A file name of 255 bytes (NAME_MAX) is legal: the temporary name must not
 * grow with it ("<name>.tmp.<pid>" was too long from 246 bytes on). */
Test(io, save_to_the_longest_legal_file_name) {
    make_dir();
    char name[256];
    memset(name, 'm', 255);
    name[255] = '\0';
    const char *path = in_dir(name);
    sl_params *ps = small_store(3.0), *back = small_store(0.0);
    cr_assert_eq(sl_params_save(ps, path), SL_OK, "%s", sl_params_error(ps));
    cr_assert_eq(sl_params_load(back, path), SL_OK, "%s", sl_params_error(back));
    cr_expect_eq(sl_param_value(sl_params_get(back, "s"))[0], 9.0);
    cr_expect_eq(count_entries(dir), 1);
    sl_params_free(ps);
    sl_params_free(back);
}

/* A long path is shown shortened in the middle, so the message (512 bytes)
 * still ends with the system's reason, and still shows the path's start and
 * its file name. */
Test(io, messages_about_long_paths_keep_the_reason) {
    make_dir();
    /* a 300-byte file name: the temporary file is made, the rename fails */
    char name[301];
    memset(name, 'n', 300);
    memcpy(name + 290, "-end.slp\0", 9);
    char path[700];
    snprintf(path, sizeof path, "%s", in_dir(name));
    sl_params *ps = small_store(1.0);
    cr_expect_eq(sl_params_save(ps, path), SL_EIO);
    const char *m = sl_params_error(ps);
    cr_expect(contains(m, "sl_params_save") && contains(m, dir) && contains(m, "...") &&
                  contains(m, "nnnnnnnnnn-end.slp\"") && contains(m, "File name too long"),
              "%s", m);
    cr_expect_eq(count_entries(dir), 0, "the temporary file was left");
    /* loading from a 2800-byte path that does not exist */
    static char deep[3000];
    int n = snprintf(deep, sizeof deep, "%s", dir);
    while (n < 2800) n += snprintf(deep + n, sizeof deep - (size_t)n, "/sub");
    snprintf(deep + n, sizeof deep - (size_t)n, "/model-end.slp");
    cr_expect_eq(sl_params_load(ps, deep), SL_EIO);
    m = sl_params_error(ps);
    cr_expect(contains(m, "sl_params_load") && contains(m, dir) &&
                  contains(m, "/sub/model-end.slp\"") && contains(m, "No such file or directory"),
              "%s", m);
    cr_expect(strlen(m) < 400, "%zu bytes: %s", strlen(m), m);
    sl_params_free(ps);
}

/* The classic case: the directory is read-only. Root ignores permissions,
 * so the test needs an ordinary user. */
Test(io, save_into_unwritable_directory_keeps_the_old_file) {
    if (geteuid() == 0) cr_skip_test("running as root: permissions are not enforced");
    make_dir();
    const char *path = in_dir("model.slp");
    sl_params *old = small_store(1.0), *next = small_store(5.0);
    cr_assert_eq(sl_params_save(old, path), SL_OK);
    size_t n0, n1;
    unsigned char *before = slurp(path, &n0);
    cr_assert_eq(chmod(dir, 0555), 0);
    cr_expect_eq(sl_params_save(next, path), SL_EIO);
    cr_expect(contains(sl_params_error(next), "Permission denied"), "%s", sl_params_error(next));
    chmod(dir, 0755);
    unsigned char *after = slurp(path, &n1);
    cr_expect(n0 == n1 && memcmp(before, after, n0) == 0);
    free(before);
    free(after);
    sl_params_free(old);
    sl_params_free(next);
}

Test(io, out_of_memory_is_reported_and_harmless) {
    make_dir();
    const char *path = in_dir("oom.slp");
    sl_params *src = small_store(1.0);
    cr_assert_eq(sl_params_save(src, path), SL_OK);
    for (int op = 0; op < 2; op++)
        for (long fail = 1;; fail++) {
            counting_alloc c = {0};
            sl_allocator a = counting_allocator(&c);
            sl_params *ps = sl_params_new_with(&a);
            sl_param_new(ps, "a", 1, (int[]){3}, NULL);
            sl_param_new(ps, "bb", 2, (int[]){2, 2}, NULL);
            sl_param_new(ps, "s", 0, NULL, NULL);
            c.fail_at = c.calls + fail;
            int rc = op ? sl_params_load(ps, path) : sl_params_save(ps, in_dir("o2.slp"));
            long failures = c.failures;
            sl_params_free(ps);
            cr_expect_eq(c.live, 0);
            if (rc == SL_OK) {
                cr_expect_eq(failures, 0);
                break;
            }
            cr_expect_eq(rc, SL_ENOMEM, "op %d fail %ld: %s", op, fail, sl_status_name(rc));
            cr_assert_lt(fail, 100);
        }
    sl_params_free(src);
}
