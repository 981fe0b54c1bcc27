/* zygote.h - pyexec-zygote, the warm path's template process (see main.c). */
#pragma once

/* Starts CPython like `python3.11 -I -S -B -u`, loads the runner, imports numpy and pandas and
 * freezes the heap. Returns 0 or -errno (the reason is on stderr). */
int zy_py_init(const char *python);

/* Around the clone of a spare, as os.fork() does. */
void zy_py_before_fork(void);
void zy_py_after_fork_parent(void);
void zy_py_after_fork_child(void);

/* In a jailed spare: wait for the script, run it, report, exit. */
_Noreturn void zy_py_serve(void);
