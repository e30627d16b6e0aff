/*
 * io.c - saving and loading a parameter store (docs/format.md):
 *
 *   "SLOPEPRM"  u32 version (1)  u32 count
 *   count x { u16 name length, name bytes, u8 ndim, ndim x u32 dims,
 *             numel x f64 values (row-major) }
 *   u32 CRC-32 of every byte before it
 *
 * Every integer and double is little-endian, written and read byte by byte,
 * so the file is the same on every host. Saving writes a temporary file and
 * renames it over the target (old file or complete new file, never a mix).
 * Loading reads the whole file and checks everything before it writes one
 * value into the store.
 */
#define _POSIX_C_SOURCE 200809L /* fsync, getpid, open, O_CLOEXEC, clock_gettime */
#include "nn_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <string.h>
#include <threads.h>
#include <time.h>
#include <unistd.h>

_Static_assert(sizeof(double) == 8 && sizeof(uint64_t) == 8, "IEEE binary64 doubles expected");

#define MAGIC "SLOPEPRM"
#define VERSION 1u
#define HEADER_BYTES 16 /* magic, version, count */
#define MIN_BYTES (HEADER_BYTES + 4)
#define NAME_MAX_BYTES 63

/* ---------------------------------------------------------------- CRC-32 */

static uint32_t crc_table[256];
static once_flag crc_once = ONCE_FLAG_INIT;

/* Entry i is the CRC register after shifting byte i through 8 rounds of the
 * reflected polynomial. */
static void crc_make_table(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t r = i;
        for (int bit = 0; bit < 8; bit++) r = (r >> 1) ^ (0xEDB88320u & (0u - (r & 1u)));
        crc_table[i] = r;
    }
}

uint32_t sl__crc32(uint32_t crc, const void *data, size_t n) {
    call_once(&crc_once, crc_make_table);
    const unsigned char *b = data;
    uint32_t r = ~crc;
    for (size_t i = 0; i < n; i++) r = crc_table[(r ^ b[i]) & 0xFFu] ^ (r >> 8);
    return ~r;
}

/* ------------------------------------------------------ little-endian codec */

static void le_put(unsigned char *out, uint64_t v, int nbytes) {
    for (int i = 0; i < nbytes; i++) out[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t le_get(const unsigned char *in, int nbytes) {
    uint64_t v = 0;
    for (int i = 0; i < nbytes; i++) v |= (uint64_t)in[i] << (8 * i);
    return v;
}

static uint64_t double_bits(double d) {
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    return u;
}

static double bits_double(uint64_t u) {
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

/* --------------------------------------------------------------- messages */

/* A path as messages show it: whole up to SHOWN_MAX bytes, else its start
 * and its end (the file name) around "...". The store's message has 512
 * bytes: with at most one shortened path in it, the system's reason at the
 * end of a message is never cut off. */
#define SHOWN_MAX 240
#define SHOWN_HEAD 80

static const char *shown_path(char out[SHOWN_MAX + 1], const char *path) {
    size_t n = strlen(path);
    if (n <= SHOWN_MAX) return path;
    size_t head = sl__utf8_cut(path, SHOWN_HEAD), tail = n - (SHOWN_MAX - SHOWN_HEAD - 3);
    while (tail < n && ((unsigned char)path[tail] & 0xC0u) == 0x80u) tail++; /* whole characters */
    snprintf(out, SHOWN_MAX + 1, "%.*s...%s", (int)head, path, path + tail);
    return out;
}

/* ------------------------------------------------------------------- save */

/* A buffered writer that keeps the running CRC of what it has written. */
typedef struct writer {
    int fd;
    uint32_t crc;
    size_t len;
    int err; /* errno of the first failure, or 0 */
    unsigned char buf[1 << 14];
} writer;

/* 0, or the errno of the failure (write may take a buffer in pieces). */
static int write_all(int fd, const unsigned char *b, size_t n) {
    while (n > 0) {
        ssize_t k = write(fd, b, n);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return k < 0 ? errno : EIO;
        b += k;
        n -= (size_t)k;
    }
    return 0;
}

static void w_flush(writer *w) {
    if (w->len && !w->err) {
        w->crc = sl__crc32(w->crc, w->buf, w->len);
        w->err = write_all(w->fd, w->buf, w->len);
    }
    w->len = 0;
}

static void w_put(writer *w, uint64_t v, int nbytes) {
    if (w->len + (size_t)nbytes > sizeof w->buf) w_flush(w);
    le_put(w->buf + w->len, v, nbytes);
    w->len += (size_t)nbytes;
}

static void w_bytes(writer *w, const void *data, size_t n) {
    const unsigned char *b = data;
    for (size_t i = 0; i < n; i++) w_put(w, b[i], 1);
}

/* The directory part of path, with its '/' ("" for a bare file name): the
 * temporary file goes there, so that the rename stays on one file system. */
static size_t dir_len(const char *path) {
    const char *slash = strrchr(path, '/');
    return slash ? (size_t)(slash - path) + 1 : 0;
}

/* Best effort: make the rename itself durable by syncing the directory. */
static void sync_dir(const char *path, char *scratch) {
    size_t n = dir_len(path);
    if (n == 0)
        strcpy(scratch, ".");
    else {
        memcpy(scratch, path, n);
        scratch[n] = '\0';
    }
    int fd = open(scratch, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    (void)fsync(fd);
    close(fd);
}

#define TEMP_PREFIX ".slope-"
#define TEMP_RANDOM 12 /* characters after the prefix, 5 bits each */
#define TEMP_TRIES 100

/* Bits for a temporary name: a per-process counter (two threads never
 * compute the same name), the pid (nor two processes), and the clock and an
 * address (hard to guess, so a planted file rarely even costs a retry). */
static uint64_t temp_bits(void) {
    static atomic_uint_least64_t counter;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t x = atomic_fetch_add(&counter, 1) * 0x9E3779B97F4A7C15u;
    x ^= ((uint64_t)getpid() << 32) ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30);
    x ^= (uint64_t)(uintptr_t)&ts;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9u; /* splitmix64's finaliser */
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBu;
    return x ^ (x >> 31);
}

/* Create a new file "<dir of path>/.slope-XXXXXXXXXXXX" for writing, its name
 * in tmp; the fd, or -1 with errno set. O_EXCL: an existing name - a file, a
 * symlink planted there - is never opened or followed, only skipped. Mode
 * 0666 less the umask (or the directory's default ACL), as for any new file:
 * the kernel applies it, so no process-wide umask is read or changed. */
static int create_temp(const char *path, char *tmp) {
    static const char digits[] = "abcdefghijklmnopqrstuvwxyz012345";
    size_t d = dir_len(path);
    memcpy(tmp, path, d);
    memcpy(tmp + d, TEMP_PREFIX, strlen(TEMP_PREFIX));
    char *r = tmp + d + strlen(TEMP_PREFIX);
    for (int attempt = 0; attempt < TEMP_TRIES; attempt++) {
        uint64_t bits = temp_bits();
        for (int i = 0; i < TEMP_RANDOM; i++, bits >>= 5) r[i] = digits[bits & 31u];
        r[TEMP_RANDOM] = '\0';
        int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
        if (fd >= 0 || errno != EEXIST) return fd;
    }
    return -1; /* errno is EEXIST */
}

/* Write the whole file to fd; 0 or the errno of the first failure. */
static int write_params(const sl_params *ps, writer *w, int fd) {
    memset(w, 0, offsetof(writer, buf));
    w->fd = fd;
    w_bytes(w, MAGIC, 8);
    w_put(w, VERSION, 4);
    w_put(w, sl_params_count(ps), 4);
    for (sl_param *p = sl_params_next(ps, NULL); p; p = sl_params_next(ps, p)) {
        const char *name = sl_param_name(p);
        int nd = sl_param_ndim(p);
        const int *dims = sl_param_dims(p);
        const double *v = sl_param_value(p);
        size_t n = sl_param_numel(p);
        w_put(w, strlen(name), 2);
        w_bytes(w, name, strlen(name));
        w_put(w, (uint64_t)nd, 1);
        for (int i = 0; i < nd; i++) w_put(w, (uint64_t)dims[i], 4);
        for (size_t i = 0; i < n; i++) w_put(w, double_bits(v[i]), 8);
    }
    w_flush(w);
    unsigned char crc[4];
    le_put(crc, w->crc, 4);
    if (!w->err) w->err = write_all(fd, crc, 4);
    return w->err;
}

int sl_params_save(const sl_params *ps, const char *path) {
    const char *fn = "sl_params_save";
    if (!ps) return SL_EARG;
    sl__params_ok(ps);
    if (!path || !path[0]) return sl__params_fail(ps, SL_EARG, "%s: path is NULL or empty", fn);
    char shown_buf[SHOWN_MAX + 1];
    const char *shown = shown_path(shown_buf, path);
    const sl_allocator *a = sl__params_allocator(ps);
    char *tmp = a->alloc(dir_len(path) + strlen(TEMP_PREFIX) + TEMP_RANDOM + 2, a->ud);
    writer *w = a->alloc(sizeof *w, a->ud);
    if (!tmp || !w) {
        a->free(tmp, a->ud);
        a->free(w, a->ud);
        return sl__params_fail(ps, SL_ENOMEM, "%s: \"%s\": out of memory", fn, shown);
    }
    int rc = SL_OK;
    int fd = create_temp(path, tmp);
    const char *tmp_name = tmp + dir_len(path);
    if (fd < 0) {
        rc = sl__params_fail(ps, SL_EIO,
                             "%s: \"%s\": cannot create a temporary file in its directory: %s", fn,
                             shown, strerror(errno));
        goto out;
    }
    int err = write_params(ps, w, fd);
    if (!err && fsync(fd) != 0) err = errno;
    if (close(fd) != 0 && !err) err = errno;
    if (err) {
        rc = sl__params_fail(ps, SL_EIO,
                             "%s: \"%s\": cannot write the temporary file \"%s\" beside it: %s", fn,
                             shown, tmp_name, strerror(err));
        unlink(tmp);
        goto out;
    }
    if (rename(tmp, path) != 0) {
        rc = sl__params_fail(ps, SL_EIO,
                             "%s: \"%s\": cannot rename the temporary file \"%s\" over it: %s", fn,
                             shown, tmp_name, strerror(errno));
        unlink(tmp);
        goto out;
    }
    sync_dir(path, tmp); /* tmp is longer than the directory part: reuse it */
out:
    a->free(w, a->ud);
    a->free(tmp, a->ud);
    return rc;
}

/* ------------------------------------------------------------------- load */

int sl__read_file(const char *path, const sl_allocator *a, unsigned char **out, size_t *size,
                  int *opened, int *err) {
    *out = NULL;
    *size = 0;
    *opened = 0;
    *err = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        *err = errno;
        return SL_EIO;
    }
    *opened = 1;
    size_t cap = 1 << 16, n = 0;
    unsigned char *buf = a->alloc(cap + 1, a->ud);
    while (buf) {
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap) break; /* end of file or error */
        unsigned char *bigger = cap < SIZE_MAX / 4 ? a->alloc(2 * cap + 1, a->ud) : NULL;
        if (bigger) memcpy(bigger, buf, n);
        a->free(buf, a->ud);
        buf = bigger;
        cap *= 2;
    }
    int bad = ferror(f), e = errno;
    fclose(f);
    if (!buf) return SL_ENOMEM;
    if (bad) {
        a->free(buf, a->ud);
        *err = e ? e : EIO;
        return SL_EIO;
    }
    buf[n] = '\0';
    *out = buf;
    *size = n;
    return SL_OK;
}

/* The whole file in an allocator buffer; SL_OK or the error already set. */
static int read_all(const sl_params *ps, const char *fn, const char *path, const char *shown,
                    unsigned char **out, size_t *size) {
    int opened, err;
    int rc = sl__read_file(path, sl__params_allocator(ps), out, size, &opened, &err);
    if (rc == SL_ENOMEM)
        return sl__params_fail(ps, rc, "%s: \"%s\": out of memory reading the file", fn, shown);
    if (rc != SL_OK)
        return sl__params_fail(ps, rc, "%s: cannot %s \"%s\": %s", fn, opened ? "read" : "open",
                               shown, strerror(err));
    return SL_OK;
}

/* One parameter's record, located in the file buffer. */
typedef struct record {
    char name[NAME_MAX_BYTES + 1];
    int ndim;
    int dims[SL_MAX_DIMS];
    size_t numel;
    size_t values; /* offset of the first double */
    size_t end;    /* offset after the last double */
} record;

/* Decode the record at *pos (k-th, 0-based) or report what is wrong with it. */
static int parse_record(const sl_params *ps, const char *fn, const char *path,
                        const unsigned char *buf, size_t size, uint32_t k, size_t *pos, record *r) {
    size_t end = size - 4; /* the CRC follows the records */
    size_t at = *pos;
#define NEED(nbytes, what)                                                                         \
    do {                                                                                           \
        if ((nbytes) > end - at)                                                                   \
            return sl__params_fail(ps, SL_EFORMAT,                                                 \
                                   "%s: \"%s\": truncated or corrupt: parameter %u needs %zu "     \
                                   "bytes for its %s at offset %zu, only %zu remain before "       \
                                   "the checksum",                                                 \
                                   fn, path, (unsigned)k, (size_t)(nbytes), what, at, end - at);   \
    } while (0)
    NEED(2, "name length");
    size_t len = (size_t)le_get(buf + at, 2);
    at += 2;
    if (len < 1 || len > NAME_MAX_BYTES)
        return sl__params_fail(ps, SL_EFORMAT,
                               "%s: \"%s\": corrupt: parameter %u has a name length of %zu, must "
                               "be 1..%d",
                               fn, path, (unsigned)k, len, NAME_MAX_BYTES);
    NEED(len, "name");
    memcpy(r->name, buf + at, len);
    r->name[len] = '\0';
    at += len;
    if (strlen(r->name) != len)
        return sl__params_fail(ps, SL_EFORMAT,
                               "%s: \"%s\": corrupt: the name of parameter %u holds a NUL byte", fn,
                               path, (unsigned)k);
    NEED(1, "rank");
    unsigned nd = buf[at++];
    if (nd > SL_MAX_DIMS)
        return sl__params_fail(ps, SL_EFORMAT,
                               "%s: \"%s\": corrupt: parameter \"%s\" has rank %u, must be 0..%d",
                               fn, path, r->name, nd, SL_MAX_DIMS);
    r->ndim = (int)nd;
    NEED(4 * (size_t)nd, "dims");
    size_t numel = 1;
    bool too_big = false; /* more values than size_t bytes can count: surely truncated */
    for (unsigned i = 0; i < nd; i++) {
        uint64_t d = le_get(buf + at, 4);
        at += 4;
        if (d < 1 || d > INT_MAX)
            return sl__params_fail(ps, SL_EFORMAT,
                                   "%s: \"%s\": corrupt: parameter \"%s\" has dims[%u] = %llu, "
                                   "must be 1..%d",
                                   fn, path, r->name, i, (unsigned long long)d, INT_MAX);
        r->dims[i] = (int)d;
        if (numel > SIZE_MAX / 8 / (size_t)d)
            too_big = true;
        else
            numel *= (size_t)d;
    }
    r->numel = numel;
    NEED(too_big ? SIZE_MAX : 8 * numel, "values");
    r->values = at;
    r->end = at + 8 * numel;
    *pos = r->end;
    return SL_OK;
#undef NEED
}

/* Check the file's structure and checksum; SL_OK and the record count. */
static int check_file(const sl_params *ps, const char *fn, const char *path,
                      const unsigned char *buf, size_t size, uint32_t *count) {
    size_t head = size < 8 ? size : 8;
    if (memcmp(buf, MAGIC, head) != 0)
        return sl__params_fail(ps, SL_EFORMAT,
                               "%s: \"%s\": not a slope parameter file (bad magic: the file must "
                               "start with \"%s\")",
                               fn, path, MAGIC);
    if (size < MIN_BYTES)
        return sl__params_fail(ps, SL_EFORMAT,
                               "%s: \"%s\": truncated: %zu bytes, a parameter file has at least %d",
                               fn, path, size, MIN_BYTES);
    uint32_t version = (uint32_t)le_get(buf + 8, 4);
    if (version != VERSION)
        return sl__params_fail(ps, SL_EFORMAT,
                               "%s: \"%s\": format version %u, this slope reads version %u", fn,
                               path, (unsigned)version, VERSION);
    *count = (uint32_t)le_get(buf + 12, 4);
    size_t pos = HEADER_BYTES;
    record r;
    for (uint32_t k = 0; k < *count; k++) {
        int rc = parse_record(ps, fn, path, buf, size, k, &pos, &r);
        if (rc != SL_OK) return rc;
    }
    if (pos != size - 4)
        return sl__params_fail(ps, SL_EFORMAT,
                               "%s: \"%s\": corrupt: %zu extra bytes after the last of %u "
                               "parameters, before the checksum",
                               fn, path, size - 4 - pos, (unsigned)*count);
    uint32_t stored = (uint32_t)le_get(buf + size - 4, 4);
    uint32_t computed = sl__crc32(0, buf, size - 4);
    if (stored != computed)
        return sl__params_fail(ps, SL_EFORMAT,
                               "%s: \"%s\": checksum mismatch (stored 0x%08x, computed 0x%08x): "
                               "the file is corrupt",
                               fn, path, (unsigned)stored, (unsigned)computed);
    return SL_OK;
}

static bool same_shape(const record *r, const sl_param *p) {
    if (r->ndim != sl_param_ndim(p)) return false;
    for (int i = 0; i < r->ndim; i++)
        if (r->dims[i] != sl_param_dims(p)[i]) return false;
    return true;
}

/* The file must hold exactly the store's parameters. seen has one byte per
 * store parameter. */
static int match_store(const sl_params *ps, const char *fn, const char *path,
                       const unsigned char *buf, size_t size, uint32_t count, unsigned char *seen) {
    size_t pos = HEADER_BYTES;
    record r;
    char sf[64], ss[64];
    for (uint32_t k = 0; k < count; k++) {
        parse_record(ps, fn, path, buf, size, k, &pos, &r); /* checked already */
        sl_param *p = sl_params_get(ps, r.name);
        if (!p)
            return sl__params_fail(ps, SL_EFORMAT,
                                   "%s: \"%s\": parameter \"%s\" %s is in the file but not in the "
                                   "store",
                                   fn, path, r.name, sl__shape_str(sf, r.ndim, r.dims));
        if (!same_shape(&r, p))
            return sl__params_fail(ps, SL_EFORMAT,
                                   "%s: \"%s\": parameter \"%s\" has shape %s in the file but %s "
                                   "in the store",
                                   fn, path, r.name, sl__shape_str(sf, r.ndim, r.dims),
                                   sl__shape_str(ss, sl_param_ndim(p), sl_param_dims(p)));
        if (seen[sl__param_index(p)]++)
            return sl__params_fail(ps, SL_EFORMAT,
                                   "%s: \"%s\": parameter \"%s\" appears twice in the file", fn,
                                   path, r.name);
    }
    for (sl_param *p = sl_params_next(ps, NULL); p; p = sl_params_next(ps, p))
        if (!seen[sl__param_index(p)])
            return sl__params_fail(ps, SL_EFORMAT,
                                   "%s: \"%s\": parameter \"%s\" %s of the store is not in the "
                                   "file (it holds %u parameters, the store %zu)",
                                   fn, path, sl_param_name(p),
                                   sl__shape_str(ss, sl_param_ndim(p), sl_param_dims(p)),
                                   (unsigned)count, sl_params_count(ps));
    return SL_OK;
}

int sl_params_load(sl_params *ps, const char *path) {
    const char *fn = "sl_params_load";
    if (!ps) return SL_EARG;
    sl__params_ok(ps);
    if (!path || !path[0]) return sl__params_fail(ps, SL_EARG, "%s: path is NULL or empty", fn);
    const sl_allocator *a = sl__params_allocator(ps);
    unsigned char *buf, *seen = NULL;
    size_t size;
    char shown_buf[SHOWN_MAX + 1];
    const char *shown = shown_path(shown_buf, path); /* the messages below name only this */
    int rc = read_all(ps, fn, path, shown, &buf, &size);
    if (rc != SL_OK) return rc;
    uint32_t count = 0;
    rc = check_file(ps, fn, shown, buf, size, &count);
    if (rc == SL_OK) {
        size_t n = sl_params_count(ps);
        seen = a->alloc(n ? n : 1, a->ud);
        if (!seen)
            rc = sl__params_fail(ps, SL_ENOMEM, "%s: \"%s\": out of memory", fn, shown);
        else {
            memset(seen, 0, n ? n : 1);
            rc = match_store(ps, fn, shown, buf, size, count, seen);
        }
    }
    if (rc == SL_OK) { /* everything checked: now, and only now, write the values */
        size_t pos = HEADER_BYTES;
        record r;
        for (uint32_t k = 0; k < count; k++) {
            parse_record(ps, fn, shown, buf, size, k, &pos, &r);
            double *v = sl_param_value(sl_params_get(ps, r.name));
            for (size_t i = 0; i < r.numel; i++)
                v[i] = bits_double(le_get(buf + r.values + 8 * i, 8));
        }
    }
    a->free(seen, a->ud);
    a->free(buf, a->ud);
    return rc;
}
