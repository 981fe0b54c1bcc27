/* scfilter.h - the job's syscall filter (SECURITY.md item 10): an allow-list for CPython, numpy
 * and pandas on x86_64, compiled once by libseccomp at daemon start and installed in each job's
 * process right before execve of the interpreter.
 */
#pragma once

#include <linux/filter.h>

/* The compiled classic-BPF program, ready for seccomp(SECCOMP_SET_MODE_FILTER). */
struct sc_filter {
	struct sock_filter *insns;
	unsigned short len;
};

/* Builds the job filter with libseccomp and exports the compiled BPF into memory. Called once at
 * daemon start, outside any filter. Returns 0 or -errno; *ret is written only on success. */
int sc_filter_build(struct sc_filter *ret);

/* Releases what sc_filter_build() returned; safe on a zeroed or already freed filter. */
void sc_filter_free(struct sc_filter *f);

/* Installs the filter in the calling process, for good. Async-signal-safe and allocation-free:
 * it runs in a freshly cloned child right before execve. The caller must have set
 * PR_SET_NO_NEW_PRIVS (the kernel refuses with EACCES otherwise). Returns 0 or -errno. */
int sc_filter_install(const struct sc_filter *f);

