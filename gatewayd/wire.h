/* wire.h - evhttp's own answers, rewritten into the API's JSON on their way to the client.
 *
 * libevent 2.1's evhttp answers some requests itself, before our handler ever sees them: a body
 * over the cap (from its Content-Length, a chunk size, or with Expect: 100-continue), a
 * malformed or oversized request line or header block, a bad chunk, an Expect it does not know.
 * Those answers are HTML pages, and 2.1 has no hook to change them (2.2's evhttp_set_errorcb).
 * server.c catches their bytes in the connection's output buffer; the functions here read such
 * an answer's head and write the JSON answer that replaces it. No I/O, unit-tested.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct evbuffer;

/* evhttp's heads are a few hundred bytes; anything longer is not one of them. */
#define WIRE_HEAD_MAX 8192

struct wire_head {
	size_t len;	  /* bytes of the head, its blank line included */
	int status;	  /* 100..599 */
	const char *line; /* the status line, without its CRLF: points into the parsed text */
	size_t line_len;
	bool has_length; /* a Content-Length header came */
	uint64_t content_length;
	bool close; /* "Connection: close" */
};

/* Parses the response head at the start of buf[0..len). Returns 1 with *ret filled, 0 when the
 * blank line that ends it has not come yet, or -EBADMSG when the bytes are not an HTTP/1.x
 * response head (or it is longer than WIRE_HEAD_MAX). */
int wire_parse_head(const char *buf, size_t len, struct wire_head *ret);

/* The API's error text for a status evhttp answered with by itself. The text naming the body cap
 * is written into buf (96 bytes are enough). */
const char *wire_error_text(int status, uint64_t max_body, char *buf, size_t len);

/* Appends a JSON error answer (the one that replaces evhttp's, or one the gateway writes without
 * evhttp): h's status line, Content-Type application/json, Content-Length, Date, X-Request-Id
 * `request_id`, Cache-Control no-store, Retry-After when `retry_after` is not 0,
 * "Connection: close" when h->close, and {"error": text}. Returns 0, or -ENOMEM with nothing
 * appended. */
int wire_write_answer(struct evbuffer *out, const struct wire_head *h, const char *request_id,
		      const char *text, uint64_t retry_after);
