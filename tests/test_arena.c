/*
 * test_arena.c - the chunked bump allocator: 32-byte alignment (also over an
 * allocator that only guarantees 8 bytes), disjoint blocks, reset keeps every
 * chunk (same allocations after a reset ask the allocator for nothing),
 * allocations larger than a chunk, and allocator failure returning NULL with
 * the arena still usable and nothing leaked.
 */
#include "internal.h"
#include "testutil.h"

#include <criterion/criterion.h>
#include <stdint.h>

#define MIN_CHUNK ((size_t)64 * 1024) /* documented in arena.c: chunks of at least 64 KiB */

static int aligned32(const void *p) { return ((uintptr_t)p & 31u) == 0; }

Test(arena, allocations_are_32_byte_aligned) {
    sl__arena ar;
    sl__arena_init(&ar, NULL);
    static const size_t sizes[] = {1, 3, 8, 17, 31, 32, 33, 63, 64, 65, 100, 777, 4096, 0, 5};
    for (int round = 0; round < 50; round++)
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            void *p = sl__arena_alloc(&ar, sizes[i]);
            cr_assert_not_null(p, "size %zu", sizes[i]);
            cr_expect(aligned32(p), "size %zu gave %p, not 32-byte aligned", sizes[i], p);
        }
    sl__arena_release(&ar);
}

/* An allocator whose blocks are deliberately 8 mod 32: the arena must still
 * hand out 32-byte aligned memory. */
static void *misaligned_alloc(size_t size, void *ud) {
    (void)ud;
    char *raw = malloc(size + 64);
    if (!raw) return NULL;
    uintptr_t a = ((uintptr_t)raw + 8 + 31) & ~(uintptr_t)31; /* 32-aligned, a - 8 >= raw */
    char *p = (char *)a + 8;                                  /* 8 mod 32 */
    memcpy((char *)a, &raw, sizeof raw);                      /* raw pointer just before p */
    return p;
}
static void misaligned_free(void *p, void *ud) {
    (void)ud;
    if (!p) return;
    char *raw;
    memcpy(&raw, (char *)p - 8, sizeof raw);
    free(raw);
}

Test(arena, aligned_over_a_misaligning_allocator) {
    sl_allocator a = {misaligned_alloc, misaligned_free, NULL};
    void *probe = misaligned_alloc(16, NULL);
    cr_assert_eq((uintptr_t)probe % 32, 8, "the test allocator must misalign");
    misaligned_free(probe, NULL);
    sl__arena ar;
    sl__arena_init(&ar, &a);
    for (int i = 0; i < 3000; i++) { /* several chunks */
        size_t n = (size_t)(i % 97) * 8 + 1;
        unsigned char *p = sl__arena_alloc(&ar, n);
        cr_assert_not_null(p);
        cr_assert(aligned32(p), "allocation %d (%zu bytes) at %p", i, n, (void *)p);
        memset(p, 0xAB, n); /* ASan: inside the chunk */
    }
    /* huge block too */
    void *h = sl__arena_alloc(&ar, 3 * MIN_CHUNK + 5);
    cr_assert(aligned32(h));
    memset(h, 1, 3 * MIN_CHUNK + 5);
    sl__arena_release(&ar);
}

Test(arena, blocks_are_disjoint) {
    sl__arena ar;
    sl__arena_init(&ar, NULL);
    enum { N = 2000 };
    unsigned char *p[N];
    size_t n[N];
    for (int i = 0; i < N; i++) {
        n[i] = (size_t)(i * 37 % 301) + 1;
        p[i] = sl__arena_alloc(&ar, n[i]);
        cr_assert_not_null(p[i]);
        memset(p[i], i & 0xFF, n[i]);
    }
    for (int i = 0; i < N; i++)
        for (size_t k = 0; k < n[i]; k++)
            cr_assert_eq(p[i][k], (unsigned char)(i & 0xFF), "block %d byte %zu overwritten", i, k);
    sl__arena_release(&ar);
}

/* The same sequence of allocations after a reset reuses the kept chunks:
 * total unchanged, no allocator call, the same addresses. */
Test(arena, reset_keeps_chunks) {
    counting_alloc c = {0};
    sl_allocator a = counting_allocator(&c);
    sl__arena ar;
    sl__arena_init(&ar, &a);
    static const size_t seq[] = {100, 5000, 70000, 10, 200000, 64, 1 << 20, 3, 40000, 40000};
    enum { NSEQ = sizeof seq / sizeof seq[0] };
    void *first[NSEQ];
    for (int rep = 0; rep < 3; rep++) /* fill several chunks, incl. oversized ones */
        for (int i = 0; i < NSEQ; i++) {
            void *p = sl__arena_alloc(&ar, seq[i]);
            cr_assert_not_null(p);
            if (rep == 0) first[i] = p;
        }
    const size_t total = ar.total;
    const long calls = c.calls, live = c.live;
    cr_assert_gt(live, 1, "the sequence must span several chunks");
    cr_assert_geq(total, c.bytes > 0 ? c.bytes : 1);
    cr_expect_eq(total, c.bytes, "total counts every byte obtained");
    for (int round = 0; round < 3; round++) {
        sl__arena_reset(&ar);
        cr_expect_eq(ar.total, total, "reset must not release memory");
        for (int rep = 0; rep < 3; rep++)
            for (int i = 0; i < NSEQ; i++) {
                void *p = sl__arena_alloc(&ar, seq[i]);
                cr_assert_not_null(p);
                cr_assert(aligned32(p));
                if (rep == 0)
                    cr_expect_eq(p, first[i], "round %d: allocation %d moved after reset", round,
                                 i);
            }
        cr_expect_eq(ar.total, total, "round %d: total grew from %zu to %zu", round, total,
                     ar.total);
        cr_expect_eq(c.calls, calls, "round %d: %ld new allocator calls after reset", round,
                     c.calls - calls);
    }
    sl__arena_release(&ar);
    cr_expect_eq(c.live, 0, "%ld chunks leaked by release", c.live);
    cr_expect_eq(ar.total, 0);
}

Test(arena, huge_allocation_larger_than_a_chunk) {
    counting_alloc c = {0};
    sl_allocator a = counting_allocator(&c);
    sl__arena ar;
    sl__arena_init(&ar, &a);
    void *small = sl__arena_alloc(&ar, 16);
    const size_t big = 10 * MIN_CHUNK + 123;
    unsigned char *h = sl__arena_alloc(&ar, big);
    cr_assert_not_null(h);
    cr_assert(aligned32(h));
    memset(h, 0x5A, big); /* every byte is usable (ASan would catch an overrun) */
    cr_expect_geq(ar.total, big + 16);
    /* the small block and later ones are untouched and distinct */
    unsigned char *after = sl__arena_alloc(&ar, 16);
    cr_assert_not_null(after);
    cr_expect(after + 16 <= h || after >= h + big, "a later block overlaps the huge one");
    cr_expect((unsigned char *)small + 16 <= h || (unsigned char *)small >= h + big);
    for (size_t k = 0; k < big; k += 4097) cr_assert_eq(h[k], 0x5A);
    sl__arena_release(&ar);
    cr_expect_eq(c.live, 0);
}

Test(arena, zero_bytes_gives_distinct_blocks) {
    sl__arena ar;
    sl__arena_init(&ar, NULL);
    void *p = sl__arena_alloc(&ar, 0), *q = sl__arena_alloc(&ar, 0);
    cr_assert_not_null(p);
    cr_assert_not_null(q);
    cr_expect_neq(p, q);
    cr_expect(aligned32(p) && aligned32(q));
    sl__arena_release(&ar);
}

static void *always_fail(size_t size, void *ud) {
    (void)size;
    ++*(int *)ud;
    return NULL;
}
static void never_called_free(void *p, void *ud) {
    (void)ud;
    cr_assert_null(p, "free called on a block never handed out");
}

Test(arena, allocator_failure_returns_null) {
    int calls = 0;
    sl_allocator a = {always_fail, never_called_free, &calls};
    sl__arena ar;
    sl__arena_init(&ar, &a);
    cr_expect_null(sl__arena_alloc(&ar, 8));
    cr_expect_null(sl__arena_alloc(&ar, 1 << 20));
    cr_expect_geq(calls, 2);
    cr_expect_eq(ar.total, 0);
    sl__arena_release(&ar);
}

Test(arena, failure_after_some_chunks_keeps_the_arena_usable) {
    counting_alloc c = {0};
    sl_allocator a = counting_allocator(&c);
    sl__arena ar;
    sl__arena_init(&ar, &a);
    void *p = sl__arena_alloc(&ar, 100);
    cr_assert_not_null(p);
    const size_t total = ar.total;
    c.fail_at = c.calls + 1; /* the next chunk request fails */
    cr_expect_null(sl__arena_alloc(&ar, 2 * MIN_CHUNK));
    cr_expect_eq(ar.total, total, "a failed chunk must not be counted");
    /* a block that fits the current chunk needs no allocator call */
    void *q = sl__arena_alloc(&ar, 100);
    cr_expect_not_null(q);
    cr_expect_neq(p, q);
    /* and once the allocator recovers, growth works again */
    void *r = sl__arena_alloc(&ar, 2 * MIN_CHUNK);
    cr_expect_not_null(r);
    sl__arena_release(&ar);
    cr_expect_eq(c.live, 0, "%ld blocks leaked", c.live);
}

Test(arena, absurd_size_returns_null) {
    counting_alloc c = {0};
    sl_allocator a = counting_allocator(&c);
    sl__arena ar;
    sl__arena_init(&ar, &a);
    cr_expect_null(sl__arena_alloc(&ar, SIZE_MAX));
    cr_expect_null(sl__arena_alloc(&ar, SIZE_MAX - 40));
    cr_expect_null(sl__arena_alloc(&ar, SIZE_MAX / 2 + 1));
    cr_expect_not_null(sl__arena_alloc(&ar, 10), "the arena still works");
    sl__arena_release(&ar);
    cr_expect_eq(c.live, 0);
}

Test(arena, release_twice_and_empty_are_harmless) {
    sl__arena ar;
    sl__arena_init(&ar, NULL);
    sl__arena_release(&ar); /* nothing allocated */
    sl__arena_reset(&ar);
    cr_expect_not_null(sl__arena_alloc(&ar, 1));
    sl__arena_release(&ar);
    sl__arena_release(&ar);
    cr_expect_eq(ar.total, 0);
}

/* Chunk growth stops at 256 KiB (arena.c): the memory held beyond what was
 * asked for stays below a chunk's worth however large the tape grows, and a
 * block larger than that gets a chunk of its own size. */
Test(arena, chunk_growth_is_capped) {
    sl__arena ar;
    sl__arena_init(&ar, NULL);
    const size_t block = 1000, cap = (size_t)256 * 1024;
    size_t asked = 0;
    for (int i = 0; i < 20000; i++) { /* ~20 MB */
        cr_assert_not_null(sl__arena_alloc(&ar, block));
        asked += 1024; /* 1000 rounded to 32 */
        cr_assert_leq(ar.total, asked + cap + 64 * 128, "after %d blocks: %zu bytes held for %zu",
                      i + 1, ar.total, asked);
    }
    const size_t before = ar.total, big = 3 * cap + 8;
    cr_assert_not_null(sl__arena_alloc(&ar, big));
    cr_expect_leq(ar.total - before, big + 128, "a big block gets a chunk of its own size");
    sl__arena_release(&ar);
}
