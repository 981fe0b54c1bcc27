/* request.h - validation of a request's framing headers and of a POST /execute body: pure
 * functions, no I/O, unit-tested. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct evkeyvalq;

/* Nesting allowed in a request body: {"script": ...} needs 1; 64 is generous and keeps the
 * parser's recursion small whatever a client sends. */
#define REQ_DEPTH_MAX 64

struct exec_params {
	json_t *doc;	    /* the parsed body; script points into it */
	const char *script; /* not NUL-terminated for our purposes: use script_len */
	size_t script_len;
	uint32_t timeout_ms; /* 0: sandboxd's default */
	uint32_t memory_mb;  /* 0: sandboxd's default */
	bool want_stderr;
};

struct exec_limits {
	uint64_t timeout_ms_max;
	uint64_t memory_mb_max;
};

/* True for application/json and application/<anything>+json, in any case, with or without
 * parameters ("application/json; charset=utf-8"): what Flask's request.is_json accepts. */
bool req_is_json_type(const char *content_type);

/* Validates and parses a POST /execute request. Returns 0 with *ret filled (free it with
 * exec_params_free()), or the HTTP status to answer (400 or 413) with the API's error text in
 * *ret_error: a constant, or `msg` (msg_len bytes, 160 are enough) when the text names a
 * server's cap. */
int req_parse_execute(const char *content_type, const char *body, size_t len,
		      const struct exec_limits *lim, struct exec_params *ret,
		      const char **ret_error, char *msg, size_t msg_len);
void exec_params_free(struct exec_params *p);

/* Framing that a proxy in front of us could read differently from evhttp (request smuggling):
 * more than one Content-Length or one that is not plain digits, a header name that is not an
 * RFC 9110 token (whitespace in it), a Transfer-Encoding other than exactly one "chunked", or
 * Transfer-Encoding together with Content-Length. evhttp has already read the body its own way
 * by then; the answer is a 400 and the connection closes. Returns the error text, or NULL. */
const char *req_framing_error(const struct evkeyvalq *headers);
