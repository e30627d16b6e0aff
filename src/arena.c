/*
 * arena.c - the chunked bump allocator every tape records into.
 *
 * Memory comes from the tape's sl_allocator in chunks of at least 64 KiB,
 * each twice the last up to 256 KiB and then 256 KiB (an allocation larger than
 * that gets a chunk of its own size), so the unused tail is bounded.
 * sl__arena_alloc is 32-byte aligned (so value buffers suit vector loads);
 * nodes take 8- or 32-aligned pieces (sl__arena_take).
 * Reset rewinds every chunk and keeps them, so a training loop that clears
 * and re-records its tape allocates nothing after the first step.
 */
#include "internal.h"

#include <stdlib.h>

#define ARENA_ALIGN 32
#define ARENA_MIN_CHUNK ((size_t)64 * 1024)
#define ARENA_MAX_CHUNK ((size_t)256 * 1024) /* growth stops here */
#define HEADER_SIZE ((sizeof(sl__chunk) + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1))

static void *default_alloc(size_t size, void *ud) {
    (void)ud;
    return malloc(size);
}

static void default_free(void *p, void *ud) {
    (void)ud;
    free(p);
}

const sl_allocator sl__default_allocator = {default_alloc, default_free, NULL};

void sl__arena_init(sl__arena *ar, const sl_allocator *a) {
    ar->a = a ? *a : sl__default_allocator;
    ar->head = ar->cur = NULL;
    ar->total = 0;
}

static sl__chunk *chunk_new(sl__arena *ar, size_t need) {
    size_t size = ARENA_MIN_CHUNK;
    if (ar->cur) size = ar->cur->size >= ARENA_MAX_CHUNK / 2 ? ARENA_MAX_CHUNK : ar->cur->size * 2;
    if (size < ARENA_MIN_CHUNK) size = ARENA_MIN_CHUNK;
    if (size < need) size = need;
    if (size > SIZE_MAX - HEADER_SIZE - ARENA_ALIGN) return NULL;
    /* malloc aligns to 16; over-allocate so the data start can be aligned to 32 */
    void *mem = ar->a.alloc(HEADER_SIZE + size + ARENA_ALIGN, ar->a.ud);
    if (!mem) return NULL;
    sl__chunk *c = mem;
    c->next = NULL;
    c->size = size;
    c->used = 0;
    uintptr_t d = (uintptr_t)((char *)c + HEADER_SIZE);
    c->data = (char *)((d + ARENA_ALIGN - 1) & ~(uintptr_t)(ARENA_ALIGN - 1));
    ar->total += HEADER_SIZE + size + ARENA_ALIGN;
    return c;
}

/* The offset in c where a block of bytes aligned to align fits, or
 * SIZE_MAX. c->data is 32-aligned, so aligning the offset aligns the block. */
static size_t fit(const sl__chunk *c, size_t bytes, size_t align) {
    const size_t off = (c->used + align - 1) & ~(align - 1);
    return off <= c->size && c->size - off >= bytes ? off : SIZE_MAX;
}

void *sl__arena_alloc(sl__arena *ar, size_t bytes) {
    if (bytes > SIZE_MAX - ARENA_ALIGN) return NULL;
    bytes = (bytes + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
    if (bytes == 0) bytes = ARENA_ALIGN;
    return sl__arena_alloc_aligned(ar, bytes, ARENA_ALIGN);
}

void *sl__arena_alloc_aligned(sl__arena *ar, size_t bytes, size_t align) {
    SL_ASSERT(align == 8 || align == ARENA_ALIGN);
    if (bytes > SIZE_MAX - ARENA_ALIGN) return NULL;
    bytes = (bytes + 7) & ~(size_t)7;
    if (bytes == 0) bytes = 8;
    sl__chunk *c = ar->cur;
    /* walk the kept chunks (after a reset) before asking for a new one */
    while (c && fit(c, bytes, align) == SIZE_MAX) {
        if (!c->next) break;
        c = c->next;
        c->used = 0;
        ar->cur = c;
    }
    size_t off = c ? fit(c, bytes, align) : SIZE_MAX;
    if (off == SIZE_MAX) {
        sl__chunk *n = chunk_new(ar, bytes);
        if (!n) return NULL;
        if (c) {
            n->next = c->next; /* NULL: c was the last chunk */
            c->next = n;
        } else {
            ar->head = n;
        }
        ar->cur = c = n;
        off = 0;
    }
    c->used = off + bytes;
    return c->data + off;
}

void sl__arena_reset(sl__arena *ar) {
    ar->cur = ar->head;
    if (ar->cur) ar->cur->used = 0;
}

void sl__arena_release(sl__arena *ar) {
    sl__chunk *c = ar->head;
    while (c) {
        sl__chunk *next = c->next;
        ar->a.free(c, ar->a.ud);
        c = next;
    }
    ar->head = ar->cur = NULL;
    ar->total = 0;
}
