/*
 * test_csv.c - the numeric CSV reader: good tables (header or not, CRLF,
 * quotes, blanks, BOM, long lines, many rows) and every error naming
 * file:line and the column.
 */
#define _POSIX_C_SOURCE 200809L /* mkdtemp, setrlimit, sysconf */
#include "slope.h"
#include "testutil.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

static char dir[256];

static char made[64][512];
static int nmade;

/* The suite's fini: remove the files and the directory this test made. */
static void cleanup(void) {
    for (int i = 0; i < nmade; i++) remove(made[i]);
    if (dir[0]) rmdir(dir);
}
TestSuite(csv, .fini = cleanup);

/* Write text to a new file in a fresh temporary directory; return its path. */
static const char *file_with(const char *name, const char *text, size_t len) {
    static char path[512];
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "/tmp/slope_csv_XXXXXX");
        cr_assert_not_null(mkdtemp(dir));
    }
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    if (nmade < 64) snprintf(made[nmade++], sizeof made[0], "%s", path);
    fwrite(text, 1, len, f);
    fclose(f);
    return path;
}
#define FILE_WITH(name, text) file_with(name, text, sizeof text - 1)

/* Reading path fails with status; the message holds each needle; *out is empty. */
static void expect_error(const char *path, int has_header, int status, const char *n1,
                         const char *n2) {
    sl_csv csv = {.rows = 99};
    char err[256];
    int rc = sl_csv_read(path, has_header, &csv, err, sizeof err);
    cr_expect_eq(rc, status, "%s: %s (%s)", path, sl_status_name(rc), err);
    cr_expect(contains(err, n1) && contains(err, n2), "message \"%s\" lacks \"%s\" / \"%s\"", err,
              n1, n2);
    cr_expect(csv.rows == 0 && csv.cols == 0 && !csv.data && !csv.header);
    sl_csv_free(&csv);
}

Test(csv, good_file_with_header) {
    const char *p = FILE_WITH("good.csv", "x1,x2,y\n0.5,-1,1\n1e-3, 2.25 ,0\n-0,3,1\n");
    sl_csv csv;
    char err[256];
    cr_assert_eq(sl_csv_read(p, 1, &csv, err, sizeof err), SL_OK, "%s", err);
    cr_expect_eq(csv.rows, 3);
    cr_expect_eq(csv.cols, 3);
    cr_expect_str_eq(csv.header[0], "x1");
    cr_expect_str_eq(csv.header[2], "y");
    double want[9] = {0.5, -1, 1, 1e-3, 2.25, 0, -0.0, 3, 1};
    for (int i = 0; i < 9; i++) cr_expect_eq(csv.data[i], want[i], "data[%d]", i);
    cr_expect(signbit(csv.data[6]));
    cr_expect_eq(sl_csv_col(&csv, "x2"), 1);
    cr_expect_eq(sl_csv_col(&csv, "z"), -1);
    sl_csv_free(&csv);
    cr_expect(csv.rows == 0 && !csv.data);
    sl_csv_free(&csv); /* twice is fine */
    sl_csv_free(NULL);
}

Test(csv, no_header_crlf_blank_lines_quotes_bom) {
    const char *p = FILE_WITH("w.csv", "\xEF\xBB\xBF"
                                       "1,2\r\n"
                                       "\r\n"
                                       "  \t \n"
                                       "\"3\", 4.5e1\r\n"
                                       "nan,-inf"); /* no final newline */
    sl_csv csv;
    cr_assert_eq(sl_csv_read(p, 0, &csv, NULL, 0), SL_OK);
    cr_expect_eq(csv.rows, 3);
    cr_expect_eq(csv.cols, 2);
    cr_expect_null(csv.header);
    cr_expect_eq(csv.data[0], 1);
    cr_expect_eq(csv.data[2], 3);
    cr_expect_eq(csv.data[3], 45);
    cr_expect(isnan(csv.data[4]));
    cr_expect(isinf(csv.data[5]) && csv.data[5] < 0);
    cr_expect_eq(sl_csv_col(&csv, "x"), -1);
    sl_csv_free(&csv);
}

/* A lone \r ends a line too (old Mac files), as in Python's universal
 * newlines: "a,b\r1,2\r3,4\r" is a header and two rows, \r\r\n a line end
 * and a blank line, and line numbers count every kind of line end. */
Test(csv, cr_only_and_mixed_line_ends) {
    const char *p = FILE_WITH("cronly.csv", "a,b\r1,2\r3,4\r");
    sl_csv csv;
    char err[256];
    cr_assert_eq(sl_csv_read(p, 1, &csv, err, sizeof err), SL_OK, "%s", err);
    cr_expect(csv.rows == 2 && csv.cols == 2);
    cr_expect(csv.data[0] == 1 && csv.data[1] == 2 && csv.data[2] == 3 && csv.data[3] == 4);
    cr_expect_str_eq(csv.header[1], "b");
    sl_csv_free(&csv);
    p = FILE_WITH("crcr.csv", "a,b\r\n1,2\r\r\n5,6");
    cr_assert_eq(sl_csv_read(p, 1, &csv, err, sizeof err), SL_OK, "%s", err);
    cr_expect(csv.rows == 2 && csv.data[1] == 2 && csv.data[2] == 5);
    sl_csv_free(&csv);
    p = FILE_WITH("mixed.csv", "1,2\r3,4\n\r\n\r5,x\n");
    expect_error(p, 0, SL_EFORMAT, "mixed.csv:5: column 2: \"x\" is not a number", "");
}

/* Cell text in a message has its control characters escaped as in C, so
 * the message is one printable line that shows what is in the file. */
Test(csv, control_characters_in_messages_are_escaped) {
    const char *p = FILE_WITH("ctl.csv", "a\tb,\"c\x01\"\n1,2\x7f\n");
    expect_error(p, 1, SL_EFORMAT, "ctl.csv:2: column 2 (\"c\\x01\"): \"2\\x7f\" is not a number",
                 "");
    p = FILE_WITH("ctl2.csv", "a\tb,c\n\"1\"\"\\\v\",2\n");
    expect_error(p, 1, SL_EFORMAT, "column 1 (\"a\\tb\"): \"1\\\"\\\\\\x0b\" is not a number", "");
    /* 40 bytes are shown, then "..." */
    p = FILE_WITH("long.csv", "\"\f123456789012345678901234567890123456789\f\"\n");
    expect_error(p, 0, SL_EFORMAT, "\"\\x0c123456789012345678901234567890123456789\"... is not",
                 "");
    char err[256];
    sl_csv csv;
    cr_expect_eq(sl_csv_read(FILE_WITH("ctl3.csv", "x\x1b[2J,1\n"), 0, &csv, err, sizeof err),
                 SL_EFORMAT);
    for (const char *c = err; *c; c++)
        cr_expect((unsigned char)*c >= 0x20 && *c != 0x7f, "byte 0x%02x in \"%s\"", *c, err);
    cr_expect(contains(err, "\"x\\x1b[2J\""), "%s", err);
}

Test(csv, quoted_header_names) {
    const char *p = FILE_WITH("q.csv", "\"a, b\",\"say \"\"hi\"\"\", c \n1,2,3\n");
    sl_csv csv;
    char err[256];
    cr_assert_eq(sl_csv_read(p, 1, &csv, err, sizeof err), SL_OK, "%s", err);
    cr_expect_eq(csv.cols, 3);
    cr_expect_str_eq(csv.header[0], "a, b");
    cr_expect_str_eq(csv.header[1], "say \"hi\"");
    cr_expect_str_eq(csv.header[2], "c");
    sl_csv_free(&csv);
}

Test(csv, long_lines_and_many_rows) {
    /* 3000 columns on one line (longer than the first read buffer), 2000 rows */
    size_t cap = 1 << 20, n = 0;
    char *text = malloc(cap);
    for (int j = 0; j < 3000; j++) n += (size_t)snprintf(text + n, cap - n, j ? ",%d" : "%d", j);
    text[n++] = '\n';
    for (int r = 0; r < 2000; r++) n += (size_t)snprintf(text + n, cap - n, "%d.5,%d\n", r, -r);
    const char *p1 = file_with("wide.csv", text, n);
    sl_csv csv;
    char err[256];
    /* the wide line is a header of 3000 names; then the rows are ragged */
    cr_expect_eq(sl_csv_read(p1, 1, &csv, err, sizeof err), SL_EFORMAT);
    cr_expect(contains(err, "wide.csv:2: 2 fields, expected 3000 as on line 1"), "%s", err);
    /* the rows alone */
    char *rows = strchr(text, '\n') + 1;
    const char *p2 = file_with("tall.csv", rows, n - (size_t)(rows - text));
    cr_assert_eq(sl_csv_read(p2, 0, &csv, err, sizeof err), SL_OK, "%s", err);
    cr_expect_eq(csv.rows, 2000);
    cr_expect_eq(csv.data[2 * 1999], 1999.5);
    cr_expect_eq(csv.data[2 * 1999 + 1], -1999);
    sl_csv_free(&csv);
    /* the wide line alone, as data */
    const char *p3 = file_with("wide1.csv", text, (size_t)(rows - text));
    cr_assert_eq(sl_csv_read(p3, 0, &csv, err, sizeof err), SL_OK, "%s", err);
    cr_expect_eq(csv.cols, 3000);
    cr_expect_eq(csv.data[2999], 2999);
    sl_csv_free(&csv);
    free(text);
}

/* The table grows from one row: a single row of 1,000,000 numbers needs
 * ~8 MB of doubles, not a first reservation of 64 rows (512 MB). Address
 * space is limited to what the process has now plus 256 MB while reading. */
Test(csv, a_wide_table_reserves_memory_for_its_rows_only) {
    enum { COLS = 1000000 };
    char *text = malloc(2 * COLS);
    for (int j = 0; j < COLS; j++) {
        text[2 * j] = (char)('0' + j % 10);
        text[2 * j + 1] = j + 1 < COLS ? ',' : '\n';
    }
    const char *p = file_with("wide_one_row.csv", text, 2 * COLS);
    free(text);
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long pages = 0;
    cr_assert(f && fscanf(f, "%lu", &pages) == 1, "cannot read /proc/self/statm");
    fclose(f);
    struct rlimit was, lim;
    cr_assert_eq(getrlimit(RLIMIT_AS, &was), 0);
    lim = was;
    lim.rlim_cur = (rlim_t)pages * (rlim_t)sysconf(_SC_PAGESIZE) + ((rlim_t)256 << 20);
    cr_assert_eq(setrlimit(RLIMIT_AS, &lim), 0);
    sl_csv csv;
    char err[256];
    int rc = sl_csv_read(p, 0, &csv, err, sizeof err);
    setrlimit(RLIMIT_AS, &was);
    cr_assert_eq(rc, SL_OK, "%s", err);
    cr_expect(csv.rows == 1 && csv.cols == COLS);
    cr_expect(csv.data[0] == 0 && csv.data[COLS - 1] == 9 && csv.data[123457] == 7);
    sl_csv_free(&csv);
}

Test(csv, ragged_row_names_file_and_line) {
    const char *p = FILE_WITH("ragged.csv", "a,b,c\n1,2,3\n\n4,5\n");
    expect_error(p, 1, SL_EFORMAT, "ragged.csv:4: 2 fields, expected 3 as on line 1", "ragged");
    p = FILE_WITH("ragged2.csv", "1,2\n3,4,5\n");
    expect_error(p, 0, SL_EFORMAT, "ragged2.csv:2: 3 fields, expected 2", "");
}

Test(csv, not_a_number_names_line_and_column) {
    const char *p = FILE_WITH("data.csv", "x1,x2,y\n1,2,3\n4,5,abc\n");
    expect_error(p, 1, SL_EFORMAT, "data.csv:3: column 3 (\"y\"): \"abc\" is not a number", "");
    p = FILE_WITH("nohdr.csv", "1,2\n3,4x\n");
    expect_error(p, 0, SL_EFORMAT, "nohdr.csv:2: column 2: \"4x\" is not a number", "");
    /* a header line read as data */
    p = FILE_WITH("hdr.csv", "x,y\n1,2\n");
    expect_error(p, 0, SL_EFORMAT, "hdr.csv:1: column 1: \"x\" is not a number", "");
    p = FILE_WITH("emptyfield.csv", "1,,3\n");
    expect_error(p, 0, SL_EFORMAT, "emptyfield.csv:1: column 2: empty field", "");
    p = FILE_WITH("trailing.csv", "1,2,\n");
    expect_error(p, 0, SL_EFORMAT, "trailing.csv:1: column 3: empty field", "");
    p = FILE_WITH("nul.csv", "1,2\n3,4\0z\n");
    expect_error(p, 0, SL_EFORMAT, "nul.csv:2: column 2: NUL byte", "");
}

Test(csv, empty_and_header_only_files) {
    expect_error(FILE_WITH("empty.csv", ""), 0, SL_EFORMAT, "empty.csv: empty file", "");
    expect_error(FILE_WITH("blank.csv", "\n  \n\r\n"), 1, SL_EFORMAT, "blank.csv: empty file", "");
    expect_error(FILE_WITH("hdronly.csv", "a,b\n"), 1, SL_EFORMAT,
                 "hdronly.csv: no data rows after the header on line 1", "");
}

Test(csv, quote_errors) {
    expect_error(FILE_WITH("uq.csv", "1,\"2\n"), 0, SL_EFORMAT,
                 "uq.csv:1: column 2: unterminated quote", "");
    expect_error(FILE_WITH("aq.csv", "\"1\"x,2\n"), 0, SL_EFORMAT,
                 "aq.csv:1: column 1: text after the closing quote", "");
}

Test(csv, missing_file_and_bad_arguments) {
    char err[256];
    sl_csv csv;
    cr_expect_eq(sl_csv_read("/nonexistent/dir/x.csv", 1, &csv, err, sizeof err), SL_EIO);
    cr_expect(contains(err, "/nonexistent/dir/x.csv: cannot open: No such file"), "%s", err);
    cr_expect_eq(sl_csv_read(NULL, 1, &csv, err, sizeof err), SL_EARG);
    cr_expect_eq(sl_csv_read("x", 1, NULL, err, sizeof err), SL_EARG);
    /* a short error buffer is truncated, not overrun */
    char small[8];
    cr_expect_eq(sl_csv_read("/nonexistent/x.csv", 1, &csv, small, sizeof small), SL_EIO);
    cr_expect_eq(strlen(small), 7);
}
