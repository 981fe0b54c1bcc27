/* job.h - one job's life in the event loop: queued, spawned, watched, reaped, cleaned up.
 * Nothing here ever blocks the loop; every fd of a job is non-blocking. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "proto.h"
#include "sbx.h"

/* Called exactly once with the job's outcome; the job frees itself later (after its cgroup
 * is gone), so the owner must forget it inside this callback. */
typedef void (*job_done_fn)(struct job *j, const struct proto_result *r, void *arg);

/* Copies the script. Limits of 0 take the daemon's defaults; the caller checked bounds. */
struct job *job_new(struct sbx *s, uint64_t client_id, const struct proto_submit *sub,
		    job_done_fn done, void *arg);
/* Starts the job now or queues it. -EBUSY when the queue is full (the job is freed). */
int job_submit(struct job *j);
/* Kills or dequeues it; the done callback reports CANCELLED unless it already finished. */
void job_cancel(struct job *j);
/* The owner is going away: cancel, and report to nobody. */
void job_detach(struct job *j);
uint64_t job_client_id(const struct job *j);
/* The warm canary: it takes a spare while the zygote is being verified (and runs cold
 * otherwise). Call before job_submit. */
void job_set_warm_only(struct job *j);
/* A canary: it runs beside the jobs (its slot is its own) and is never counted in running or
 * queued, so that clients see the daemon's capacity whole from the moment it listens (the
 * canary's answer comes before its jail is torn down). Call before job_submit. */
void job_set_internal(struct job *j);
/* It ran in a spare of the zygote. */
bool job_is_warm(const struct job *j);
/* pid is a job's or a spare's process (for reaping strays). */
bool job_pid_is_tracked(const struct sbx *s, pid_t pid);
/* A spare with a process is there for a job. */
bool job_spare_has_process(const struct sbx *s);
/* Starts queued jobs that can start now (a slot is free; a warm job's spare is there). */
void job_pump_queue(struct sbx *s);

/* Spares, for warm.c: a spare is a job without a client whose process the zygote clones.
 * job_spare_new() makes its slot, cgroup, pipes and sync socket and fills fds[] with what the
 * zygote must pass on (the order of zyproto.h); the five pipe ends are the caller's to close
 * once sent, the cgroup fds are not (job_spare_sent closes those that must go). */
struct job *job_spare_new(struct sbx *s, int *fds, unsigned max_fds, unsigned *n_fds,
			  bool *cg_v2);
void job_spare_sent(struct job *sp);
/* The zygote reported the spare's process: watch it. -ENOMEM: the spare was discarded. */
int job_spare_started(struct job *sp, pid_t pid, int pidfd);
/* Kills (if started) and removes a spare that will never get a job. */
void job_spare_discard(struct job *sp);
/* At exit: kills every job left (answered ones included) and removes its cgroup. */
void job_stop_all(struct sbx *s);
/* The zygote is gone: kills every spare; their cgroups are removed from the loop. */
void job_spares_discard_all(struct sbx *s);
/* At exit: kills every spare and removes its cgroup, synchronously (those of spares already
 * discarded too). */
void job_spares_stop(struct sbx *s);
