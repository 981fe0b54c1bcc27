/* job.h - one job's life in the event loop: queued, spawned, watched, reaped, cleaned up.
 * Nothing here ever blocks the loop; every fd of a job is non-blocking. */
#pragma once

#include <stdint.h>

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
