/* reply.h - the HTTP status and JSON body for each answer sandboxd can give. Pure functions,
 * no I/O: the mapping from verdicts to the API contract lives here and nowhere else. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "proto.h"

/* The result JSON from sandboxd is nested at most 64 deep (the runner's cap); the margin only
 * protects our stack from a daemon that misbehaves. */
#define REPLY_RESULT_DEPTH_MAX 128

struct gw_reply {
	int status;
	json_t *body;	     /* owned by the caller once returned */
	const char *verdict; /* for the log line */
	const char *problem; /* for the log line when the gateway, not the script, failed */
};

/* {"error": msg}, or NULL when out of memory. */
json_t *reply_error_body(const char *msg);

/* A job's RESULT: 200 {"result": ..., "stdout": ...} for ok; 400 {"error": ..., "stdout": ...}
 * for the script's failures; 500 for a sandbox failure; "stderr" only when asked for. The
 * result text is parsed and re-encoded, never spliced. Returns 0 or -ENOMEM. */
int reply_from_result(const struct proto_result *res, bool want_stderr, struct gw_reply *ret);

/* sandboxd refused the job (ERROR with its id). Returns 0 or -ENOMEM. */
int reply_from_refusal(const struct proto_error *e, struct gw_reply *ret);

/* "stdout", "stderr", "stdout,stderr", or "" when nothing was cut. */
const char *reply_truncated(uint16_t flags);
