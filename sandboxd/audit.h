/* audit.h - the host settings a jail's strength depends on (../shared/SECURITY.md item 15),
 * read once at start-up and reported in one log line, with a warning per weak setting. The
 * seccomp filter denies jobs the interfaces these sysctls guard, so they are a second line: a
 * weak one is reported, not refused (the canary refuses what would break the jail itself). */
#pragma once

#include <stddef.h>

struct audit_item {
	const char *what; /* "kernel.unprivileged_bpf_disabled" */
	char value[64];	  /* as read, or "absent" */
	const char *weak; /* why the value is weak, or NULL */
	const char *held; /* what keeps jobs safe from it all the same */
};

#define AUDIT_MAX 16

/* Fills items[]; returns how many. */
size_t audit_host(struct audit_item *items, size_t max);
