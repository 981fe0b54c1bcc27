/* arenas.c - pymalloc's arenas side by side while the zygote warms up, so that its objects
 * sit in one mapping that huge.c can turn into huge pages.
 *
 * By default each 1 MiB arena is a mapping of its own, and while numpy and pandas load, the
 * kernel puts them between the libraries' mappings: no 2 MiB-aligned run of them is one
 * mapping, and no huge page can hold them. Here they are carved from one reserved region
 * instead, until zy_arenas_close(); after it (in every job) arenas are plain mappings again,
 * as CPython makes them, so a job's objects, its memory and its pymalloc are a cold job's.
 *
 * One region per process and CPython's allocator hook takes a context pointer, not a struct
 * we own: the state is this file's.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "zygote.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/mman.h>

#include "cleanup.h"

/* The zygote's objects take about 25 MiB; what does not fit goes to plain mappings. */
#define REGION_BYTES (128u << 20)
#define ALIGN_BYTES (2u << 20) /* a huge page on x86-64 and on arm64 with 4 KiB pages */
#define MAX_HOLES 64
#define ARENA_BYTES (1u << 20) /* CPython 3.11's ARENA_SIZE: only those are carved */

static struct {
	char *base;
	size_t used; /* bytes carved, from base up */
	bool open;   /* still carving: zy_arenas_close() not called yet */
	size_t n_holes;
	void *holes[MAX_HOLES]; /* arenas freed inside the region, to hand out again */
} region;

static bool in_region(const void *p)
{
	return region.base && (const char *)p >= region.base &&
	       (const char *)p < region.base + region.used;
}

static void *arena_alloc(void *ctx, size_t size)
{
	void *p;

	(void)ctx;
	if (region.open && size == ARENA_BYTES) {
		if (region.n_holes)
			return region.holes[--region.n_holes];
		if (region.used + size <= REGION_BYTES) {
			p = region.base + region.used;
			region.used += size;
			return p;
		}
	}
	p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

static void arena_free(void *ctx, void *p, size_t size)
{
	(void)ctx;
	/* A hole kept mapped, its pages given back, keeps the region one mapping. */
	if (region.open && in_region(p) && size == ARENA_BYTES && region.n_holes < MAX_HOLES &&
	    madvise(p, size, MADV_DONTNEED) == 0) {
		region.holes[region.n_holes++] = p;
		return;
	}
	munmap(p, size);
}

int zy_arenas_open(void)
{
	PyObjectArenaAllocator a = { NULL, arena_alloc, arena_free };
	size_t span = REGION_BYTES + ALIGN_BYTES;
	char *p = mmap(NULL, span, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	uintptr_t start, end;

	if (p == MAP_FAILED)
		return -errno;
	/* Aligned, so that its huge pages begin at its start: the slack at both ends goes. */
	start = ((uintptr_t)p + ALIGN_BYTES - 1) & ~(uintptr_t)(ALIGN_BYTES - 1);
	end = start + REGION_BYTES;
	if (start > (uintptr_t)p)
		munmap(p, start - (uintptr_t)p);
	if ((uintptr_t)p + span > end)
		munmap((void *)end, (uintptr_t)p + span - end);
	region.base = (char *)start;
	region.open = true;
	PyObject_SetArenaAllocator(&a);
	return 0;
}

void zy_arenas_close(void)
{
	size_t keep = region.used;

	if (!region.base || !region.open)
		return;
	region.open = false;
	/* The unused rest goes: a job must not find it mapped, nor huge.c fill it. */
	if (keep < REGION_BYTES)
		munmap(region.base + keep, REGION_BYTES - keep);
}
