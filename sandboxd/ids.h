/* ids.h - the job's identity: a user namespace in which only the inner uid/gid exists, mapped
 * to an unprivileged host id that belongs to one job slot at a time. */
#pragma once

#include <sys/types.h>

#define IDS_INNER 1000 /* the job's uid and gid inside its namespace; never 0 */

/* Parent side: writes setgroups "deny" and one-line uid_map/gid_map for the child.
 * `pidfd` proves the /proc/<pid> directory still belongs to our child. */
int ids_write_maps(pid_t pid, int pidfd, uid_t host_id);
/* Child side, after the maps are written: become IDS_INNER with no supplementary groups. */
int ids_become_inner(void);

/* Parent side, with the maps: oom_score_adj 1000 for the child, written by the daemon so that,
 * when it holds CAP_SYS_RESOURCE, the kernel also pins it as the child's minimum: the job
 * cannot lower it again (it can only when the daemon lacks the capability; audit.c says so). */
int ids_pin_oom_score(pid_t pid, int pidfd);
