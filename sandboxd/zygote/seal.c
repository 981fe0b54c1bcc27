/* seal.c - no free blocks left in the zygote's heaps when spares fork from it.
 *
 * A job's allocations reuse free blocks first, and in a spare each free block the zygote left
 * lies on a page it shares with the zygote: the job's first write there copies that page,
 * for one small object. Taken here, before the fork, they are never a job's: its objects
 * come from fresh pools and from the top of the heap, packed on pages of its own, until it
 * frees some of the zygote's. Measured at saturation (pandas example, 8 at a time): 1163 ->
 * 1106 page faults per job, and 224 -> 233 jobs/s (8.7 -> 8.5 ms of CPU per job) over 8
 * interleaved pairs of 10 s runs. The blocks stay allocated and unused: under 1 MiB of the
 * zygote, shared by every spare.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "zygote.h"

#include <errno.h>
#include <malloc.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cleanup.h"

/* CPython's own report of its small-object allocator (internal/pycore_pymem.h in 3.11, the
 * function sys._debugmallocstats() calls). */
PyAPI_FUNC(int) _PyObject_DebugMallocStats(FILE *out);

#define POOL_BYTES 16384 /* CPython 3.11's POOL_SIZE */
#define POOL_HEADER_BYTES 48 /* its pool header, rounded up to the block alignment */
#define BIG_BLOCK 512 /* its largest size class */

/* pymalloc's report: each size class's block size and free blocks in used pools, and the
 * arenas' unused pools. Returns the free blocks it lists (a pool counts as its 512-byte
 * blocks), taking them when `take` is set, or -errno. */
static long pymalloc_free_blocks(bool take)
{
	_cleanup_free_ char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	unsigned per_pool = (POOL_BYTES - POOL_HEADER_BYTES) / BIG_BLOCK;
	char *line, *save = NULL;
	long blocks = 0;

	if (!f)
		return -errno;
	if (!_PyObject_DebugMallocStats(f)) {
		fclose(f);
		return -ENOTSUP; /* pymalloc is not the allocator */
	}
	if (fclose(f) != 0)
		return -errno;
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		unsigned cls, size, pools, used, avail, unused;
		int end = 0;

		/* "class size num_pools blocks_in_use avail_blocks" */
		if (sscanf(line, " %u %u %u %u %u %n", &cls, &size, &pools, &used, &avail, &end) ==
			    5 &&
		    line[end] == '\0') {
			/* taken below */
		} else if (sscanf(line, "%u unused pools %n", &unused, &end) == 1 && end > 0) {
			size = BIG_BLOCK; /* each unused pool is taken by the next new pool's blocks */
			avail = unused * per_pool;
		} else {
			continue;
		}
		blocks += avail;
		for (unsigned i = 0; take && i < avail; i++)
			if (!PyObject_Malloc(size))
				return -ENOMEM;
	}
	return blocks;
}

long zy_seal_pymalloc(long *ret_left)
{
	long taken = pymalloc_free_blocks(true), left;

	if (taken < 0)
		return taken;
	left = pymalloc_free_blocks(false);
	if (left < 0)
		return left;
	*ret_left = left;
	return taken;
}

/* glibc: per size up to 1032 bytes (its tcache's), blocks until one comes from the top of the
 * heap, so that neither the cache nor the fast and small bins behind it hold one; then what is
 * left of the larger free chunks, split into the smallest blocks. (No malloc_trim() first: it
 * would give back pages inside free chunks, and so split the huge pages huge.c made.) */
/* Blocks of `request` bytes until one comes from `top` on, at most `limit`: how many, or
 * -ENOMEM. */
static long take_until_top(size_t request, size_t limit, const char *top)
{
	long n = 0;

	while ((size_t)n < limit) {
		char *p = malloc(request);

		if (!p)
			return -ENOMEM;
		n++;
		if (p >= top)
			break;
	}
	return n;
}

long zy_seal_glibc(long *ret_left)
{
	struct mallinfo2 mi = mallinfo2();
	char *top = (char *)sbrk(0) - mi.keepcost;
	long taken = 0, n;

	for (size_t chunk = 32; chunk <= 1040; chunk += 16) {
		/* the cache's 7, and the bins' */
		if ((n = take_until_top(chunk - 8, mi.fordblks / chunk + 8, top)) < 0)
			return n;
		taken += n;
	}
	mi = mallinfo2();
	if ((n = take_until_top(24, mi.fordblks / 32 + 1, top)) < 0)
		return n;
	taken += n;
	mi = mallinfo2();
	*ret_left = (long)(mi.fordblks - mi.keepcost); /* free bytes below the top */
	return taken;
}
