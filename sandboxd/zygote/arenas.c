/* arenas.c - pymalloc's arenas side by side while the zygote warms up, so that its objects
 * sit in one mapping that huge.c can turn into huge pages.
 *
 * By default each 1 MiB arena is a mapping of its own, and while numpy and pandas load, the
 * kernel puts them between the libraries' mappings: no 2 MiB-aligned run of them is one
 * mapping, and no huge page can hold them. Here they are carved from one reserved region
 * instead, until zy_arenas_close(); after it (in every job) arenas are plain mappings again,
 * as CPython makes them, so a job's objects, its memory and its pymalloc are a cold job's.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "zygote.h"

#include <errno.h>
#include <stdint.h>
#include <sys/mman.h>

#include "cleanup.h" /* ARRAY_SIZE */

/* The zygote's objects take about 25 MiB; what does not fit goes to plain mappings. */
#define REGION_BYTES ((size_t)128 << 20)
#define ARENA_BYTES ((size_t)1 << 20) /* CPython 3.11's ARENA_SIZE: only those are carved */

static bool in_region(const struct zy_arenas *a, const void *p)
{
	return a->base && (const char *)p >= a->base && (const char *)p < a->base + a->used;
}

static void *arena_alloc(void *ctx, size_t size)
{
	struct zy_arenas *a = ctx;
	void *p;

	if (a->open && size == ARENA_BYTES) {
		if (a->n_holes)
			return a->holes[--a->n_holes];
		if (a->used + size <= a->size) {
			p = a->base + a->used;
			a->used += size;
			return p;
		}
	}
	p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

static void arena_free(void *ctx, void *p, size_t size)
{
	struct zy_arenas *a = ctx;

	/* A hole kept mapped, its pages given back, keeps the region one mapping. */
	if (a->open && in_region(a, p) && size == ARENA_BYTES &&
	    a->n_holes < ARRAY_SIZE(a->holes) && madvise(p, size, MADV_DONTNEED) == 0) {
		a->holes[a->n_holes++] = p;
		return;
	}
	munmap(p, size);
}

int zy_arenas_open(struct zy_arenas *a)
{
	PyObjectArenaAllocator hook = { a, arena_alloc, arena_free };
	size_t align = zy_huge_bytes(), span = REGION_BYTES + align;
	char *p = mmap(NULL, span, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	uintptr_t start, end;

	*a = (struct zy_arenas){ 0 };
	if (p == MAP_FAILED)
		return -errno;
	/* Aligned, so that its huge pages begin at its start: the slack at both ends goes. */
	start = ((uintptr_t)p + align - 1) & ~(uintptr_t)(align - 1);
	end = start + REGION_BYTES;
	if (start > (uintptr_t)p)
		munmap(p, start - (uintptr_t)p);
	if ((uintptr_t)p + span > end)
		munmap((void *)end, (uintptr_t)p + span - end);
	*a = (struct zy_arenas){ .base = (char *)start, .size = REGION_BYTES, .open = true };
	PyObject_SetArenaAllocator(&hook);
	return 0;
}

void zy_arenas_close(struct zy_arenas *a)
{
	if (!a->base || !a->open)
		return;
	a->open = false;
	/* The unused rest goes: a job must not find it mapped, nor huge.c fill it. */
	if (a->used < a->size)
		munmap(a->base + a->used, a->size - a->used);
}
