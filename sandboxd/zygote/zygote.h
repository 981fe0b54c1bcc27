/* zygote.h - pyexec-zygote, the warm path's template process (see main.c). */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* pymalloc's arenas carved from one region while the zygote warms up (arenas.c). */
struct zy_arenas {
	char *base;	/* NULL: the region could not be made; arenas are CPython's own */
	size_t size;	/* the region's bytes */
	size_t used;	/* carved, from base up */
	bool open;	/* still carving */
	size_t n_holes; /* arenas freed inside the region, to hand out again */
	void *holes[64];
};

/* Starts CPython like `python3.11 -I -S -B -u` with its arenas in `arenas`, loads the runner,
 * imports numpy and pandas and freezes the heap. Returns 0 or -errno (the reason is on
 * stderr). */
int zy_py_init(const char *python, struct zy_arenas *arenas);

/* Installs the arena allocator (after Py_PreInitialize(), before the interpreter allocates);
 * returns 0 or -errno, and then CPython keeps its own. zy_arenas_close() ends the carving. */
int zy_arenas_open(struct zy_arenas *a);
void zy_arenas_close(struct zy_arenas *a);

/* Take every free block (seal.c): of pymalloc, while the arenas are still carved, and of
 * glibc's heap. Return how many, or -errno; *ret_left is what stays free after (pymalloc's
 * blocks, glibc's bytes below the top of its heap). */
long zy_seal_pymalloc(long *ret_left);
long zy_seal_glibc(long *ret_left);

/* The size of a transparent huge page (huge.c). */
size_t zy_huge_bytes(void);

/* Moves the heap into transparent huge pages (huge.c). Returns how many KiB, or -errno when
 * none could be. */
long zy_collapse_heap(void);

/* Around the clone of a spare, as os.fork() does; the first two only while the zygote has
 * another thread (main.c, spawn_spare). */
void zy_py_before_fork(void);
void zy_py_after_fork_parent(void);
void zy_py_after_fork_child(void);

/* In a jailed spare: wait for the script, run it, report, exit. */
_Noreturn void zy_py_serve(void);
