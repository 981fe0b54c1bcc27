/* zygote.h - pyexec-zygote, the warm path's template process (see main.c). */
#pragma once

/* Starts CPython like `python3.11 -I -S -B -u`, loads the runner, imports numpy and pandas and
 * freezes the heap. Returns 0 or -errno (the reason is on stderr). */
int zy_py_init(const char *python);

/* pymalloc's arenas in one region until zy_arenas_close(), for huge pages (arenas.c).
 * zy_py_init() opens it, after Py_PreInitialize() and before the interpreter allocates. */
int zy_arenas_open(void);
void zy_arenas_close(void);

/* Takes every free block of pymalloc and of glibc's heap (seal.c). Returns how many, or
 * -errno. */
int zy_heap_seal(void);

/* Moves the heap into transparent huge pages (huge.c). Returns how many KiB, or -errno when
 * none could be. */
long zy_collapse_heap(void);

/* Around the clone of a spare, as os.fork() does. */
void zy_py_before_fork(void);
void zy_py_after_fork_parent(void);
void zy_py_after_fork_child(void);

/* In a jailed spare: wait for the script, run it, report, exit. */
_Noreturn void zy_py_serve(void);
