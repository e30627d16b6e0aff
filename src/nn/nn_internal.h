/*
 * nn_internal.h - what the files of src/nn/ share: access to a store's
 * allocator and error message (the store's layout stays private to
 * params.c), rollback of parameters just added, and the CRC-32 of the
 * parameter file format.
 */
#ifndef SLOPE_NN_INTERNAL_H
#define SLOPE_NN_INTERNAL_H

#include "../internal.h"

/* Set the store's message (printf-style) and return status. ps is const so
 * that failing const calls (sl_params_save) can report; the store itself is
 * never a const object. */
int sl__params_fail(const sl_params *ps, int status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
/* Clear the store's message: the call in progress has not failed (yet). */
void sl__params_ok(const sl_params *ps);
/* The allocator the store was made with. */
const sl_allocator *sl__params_allocator(const sl_params *ps);
/* The store a parameter belongs to, and its position in insertion order
 * (0 .. sl_params_count-1). */
sl_params *sl__param_owner(const sl_param *p);
size_t sl__param_index(const sl_param *p);
/* Remove and free every parameter added after the first `keep` ones (in
 * insertion order): rollback of a multi-parameter call that failed midway. */
void sl__params_truncate(sl_params *ps, size_t keep);

/* Read the whole file at path into *out (size bytes plus a terminating NUL,
 * from allocator a). SL_OK; SL_EIO with *opened telling whether fopen
 * succeeded and *err the errno; SL_ENOMEM. */
int sl__read_file(const char *path, const sl_allocator *a, unsigned char **out, size_t *size,
                  int *opened, int *err);

/* The length of the longest prefix of s of at most n bytes (n <= strlen(s))
 * that does not end inside a UTF-8 character: for showing the start of a
 * string in a message. */
static inline size_t sl__utf8_cut(const char *s, size_t n) {
    while (n > 0 && ((unsigned char)s[n] & 0xC0u) == 0x80u) n--;
    return n;
}

/* CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320, initial value and
 * final xor 0xFFFFFFFF). Start with crc = 0 and feed data in any pieces:
 * crc = sl__crc32(crc, chunk, n). sl__crc32(0, "123456789", 9) = 0xCBF43926. */
uint32_t sl__crc32(uint32_t crc, const void *data, size_t n);

#endif /* SLOPE_NN_INTERNAL_H */
