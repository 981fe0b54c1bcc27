/* audit.h - the host settings a jail's strength depends on (../shared/SECURITY.md item 15), read
 * at start-up and again every few seconds (main.c: a host that turns fatal later refuses jobs
 * from then on). Each finding is one of three levels:
 *
 *  - fatal: isolation cannot hold on this host whatever the jail does (no seccomp filters, a
 *    namespace the jail needs is unavailable, no memory, pids or cpu controller on either cgroup
 *    hierarchy, a core_pattern pipe that would receive job cores). sandboxd then runs no job: it
 *    answers PING not ready with the first fatal finding as the reason, and SUBMIT with ERROR
 *    NOT_READY, so the gateway's /health says why;
 *  - weak: a host setting is looser than it should be, but the jail denies jobs what it guards
 *    (mostly the seccomp filter): reported with what keeps jobs safe, and served;
 *  - ok.
 *
 * The audit reads everything below a root directory, "/" in production; tests point it at a fake
 * tree (--audit-root) to show each finding on any host without touching the host's settings. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

enum audit_level { AUDIT_OK, AUDIT_WEAK, AUDIT_FATAL };

struct audit_item {
	const char *what; /* "kernel.unprivileged_bpf_disabled", "cgroup.memory" */
	char value[128];  /* as read ("absent" when the kernel has no such knob), or a summary */
	enum audit_level level;
	const char *why;  /* weak or fatal: what the value lets a job do, or what the jail lacks */
	const char *note; /* weak: what keeps jobs safe all the same; fatal: what to change */
};

#define AUDIT_MAX 32

struct audit_report {
	size_t n, n_weak, n_fatal;
	struct audit_item items[AUDIT_MAX];
};

/* What cg_init() found, which the audit cannot see from files alone. */
struct audit_cgroup {
	int version;	   /* the hierarchy job cgroups are made in: 1, 2, or 0 when none works */
	bool swap_limited; /* it can hold a job's swap at 0 */
};

/* Audits the host below `root` ("/" for the real one). Returns 0, or -errno when `root` cannot be
 * opened (then nothing was audited). */
int audit_host(const char *root, const struct audit_cgroup *cg, struct audit_report *ret);

/* The first fatal finding as one line, for PONG's reason and SUBMIT's refusal; "" when there is
 * none. */
const char *audit_refusal(const struct audit_report *r, char *buf, size_t len);
