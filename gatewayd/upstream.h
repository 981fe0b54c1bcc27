/* upstream.h - the one persistent connection to sandboxd, with many jobs in flight.
 *
 * Jobs are matched to answers by a job id this module hands out (PROTOCOL.md, rules 1-3).
 * When sandboxd is down or goes away, every job in flight is answered UP_LOST at once and the
 * module reconnects by itself, with a backoff, until sandboxd is back. A sandboxd that stays
 * connected but falls silent counts as gone: no PONG to two status PINGs in a row loses the
 * connection, and a job not answered within its time limit plus a grace of its (estimated)
 * start is answered UP_TIMEOUT and cancelled.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto.h"

struct event_base;
struct up;
struct up_job;

enum up_answer_kind {
	UP_RESULT,  /* the job ran (or was cancelled): verdict, output, statistics */
	UP_ERROR,   /* sandboxd refused the job (BUSY, INVALID, SHUTDOWN, ...) */
	UP_PONG,    /* the answer to up_ping() */
	UP_LOST,    /* the connection closed before the answer came */
	UP_TIMEOUT, /* no answer within the job's deadline; the job was cancelled */
};

struct up_limits {
	uint64_t status_ms;	     /* status PING interval; two unanswered ones lose sandboxd */
	uint64_t out_max;	     /* bytes waiting to be written to sandboxd; -ENOBUFS above */
	uint64_t default_timeout_ms; /* a job's time limit when it does not name one */
	uint64_t grace_ms;	     /* what a job may take beyond its time limit (teardown) */
};

struct up_answer {
	enum up_answer_kind kind;
	const struct proto_result *result; /* UP_RESULT */
	const struct proto_error *error;   /* UP_ERROR */
	const struct proto_pong *pong;	   /* UP_PONG */
	double seconds;			   /* from sending the request to this answer */
};

/* Called exactly once per job unless up_forget() came first. The pointers in `a` are valid only
 * during the call; the job is gone when it returns. */
typedef void (*up_answer_fn)(void *arg, const struct up_answer *a);

enum up_event_kind {
	UP_EV_CONNECTED,      /* the first PONG on a connection; attempts: failures before it */
	UP_EV_CONNECT_FAILED, /* err: -errno of the first failure of an outage */
	UP_EV_LOST,	      /* err, detail: why; jobs: how many were answered UP_LOST; greeted:
			       * whether a PONG had come (only the first loss of an outage of
			       * connections that never answered is reported) */
	UP_EV_STRAY,	      /* an answer for a job id that is not in flight (ignored) */
	UP_EV_DROPPED,	      /* the RESULT of a forgotten job: verdict, seconds */
	UP_EV_ABANDONED,      /* a job sandboxd never answered, not even its CANCEL: job_id */
	UP_EV_NO_RETRY,	      /* the reconnection could not be scheduled (err): up_start() again */
};

struct up_event {
	enum up_event_kind kind;
	int err;
	const char *detail;
	unsigned jobs;
	unsigned attempts;
	uint64_t job_id;
	uint16_t verdict;
	double seconds;
	bool greeted;
};

/* Tells the owner what happened, so it can log once; the module itself stays quiet. */
typedef void (*up_event_fn)(void *arg, const struct up_event *ev);

struct up_status {
	bool connected;
	bool have_pong; /* a PONG arrived on this connection; the fields below are from it */
	bool ready;
	uint32_t running, queued, max_running, max_queued;
	uint64_t connects;   /* successful connects */
	uint64_t reconnects; /* successful connects after the first */
	unsigned jobs;	     /* SUBMITs not answered yet, forgotten ones included */
	int last_error;	     /* -errno of the last failed connect or of the last loss */
};

int up_new(struct event_base *base, const char *path, const struct up_limits *lim,
	   up_event_fn on_event, void *event_arg, struct up **ret);
/* Frees everything; no answer is delivered any more. */
void up_free(struct up *u);
/* Connects now (or schedules the retries) unless connected or a retry is already scheduled;
 * the outcome arrives as an event. */
void up_start(struct up *u);
const struct up_status *up_status(const struct up *u);

/* Sends a job. Returns 0, -ENOTCONN while sandboxd is not connected, -ENOBUFS while more than
 * out_max bytes wait to be written to it, or -ENOMEM/-EMSGSIZE. */
int up_submit(struct up *u, const struct proto_submit *s, up_answer_fn fn, void *arg,
	      struct up_job **ret);
/* Asks sandboxd for its status; the answer is UP_PONG (or UP_LOST). */
int up_ping(struct up *u, up_answer_fn fn, void *arg, struct up_job **ret);
/* The asker is gone: no callback will come. A job still running is cancelled on sandboxd; its
 * RESULT (cancelled) is dropped when it arrives. */
void up_forget(struct up *u, struct up_job *j);
