/* wire.c - see wire.h. */
#include "wire.h"

#include <errno.h>
#include <event2/buffer.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "cleanup.h"
#include "jsonout.h"
#include "reply.h"

static bool parse_u64(const char *s, size_t len, uint64_t *ret)
{
	uint64_t v = 0;

	if (len == 0 || len > 19)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	*ret = v;
	return true;
}

/* Header `name` (case-insensitive) in the line [p, p+len): its value, trimmed, or NULL. */
static const char *header_value(const char *p, size_t len, const char *name, size_t *ret_len)
{
	size_t n = strlen(name);
	const char *v, *end = p + len;

	if (len <= n || p[n] != ':' || strncasecmp(p, name, n) != 0)
		return NULL;
	v = p + n + 1;
	while (v < end && (*v == ' ' || *v == '\t'))
		v++;
	while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	*ret_len = (size_t)(end - v);
	return v;
}

int wire_parse_head(const char *buf, size_t len, struct wire_head *ret)
{
	static const char proto[] = "HTTP/1.";
	size_t scan = len < WIRE_HEAD_MAX ? len : WIRE_HEAD_MAX;
	const char *end, *p, *eol, *v;
	struct wire_head h = {0};
	size_t vlen;

	/* Say "not a head" as soon as the first bytes show it, rather than wait for more. */
	if (memcmp(buf, proto, scan < sizeof(proto) - 1 ? scan : sizeof(proto) - 1) != 0)
		return -EBADMSG;
	end = memmem(buf, scan, "\r\n\r\n", 4);
	if (!end)
		return len >= WIRE_HEAD_MAX ? -EBADMSG : 0;
	h.len = (size_t)(end - buf) + 4;

	/* "HTTP/1.x NNN reason" */
	eol = memmem(buf, h.len, "\r\n", 2);
	if ((size_t)(eol - buf) < sizeof(proto) + 4 || buf[sizeof(proto)] != ' ')
		return -EBADMSG;
	p = buf + sizeof(proto) + 1;
	if (p[0] < '1' || p[0] > '5' || p[1] < '0' || p[1] > '9' || p[2] < '0' || p[2] > '9' ||
	    (p + 3 < eol && p[3] != ' '))
		return -EBADMSG;
	h.status = (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
	h.line = buf;
	h.line_len = (size_t)(eol - buf);

	for (p = eol + 2; p < end + 2; p = eol + 2) {
		eol = memmem(p, (size_t)(end + 2 - p), "\r\n", 2);
		if ((v = header_value(p, (size_t)(eol - p), "Content-Length", &vlen))) {
			if (!parse_u64(v, vlen, &h.content_length))
				return -EBADMSG;
			h.has_length = true;
		} else if ((v = header_value(p, (size_t)(eol - p), "Connection", &vlen))) {
			h.close = vlen == 5 && strncasecmp(v, "close", 5) == 0;
		}
	}
	*ret = h;
	return 1;
}

const char *wire_error_text(int status, uint64_t max_body, char *buf, size_t len)
{
	switch (status) {
	case 400:
		return "Bad request";
	case 413:
		snprintf(buf, len, "Request body is too large (over %llu bytes)",
			 (unsigned long long)max_body);
		return buf;
	case 414:
		return "Request URI is too long";
	case 417:
		return "Expectation failed";
	case 431:
		return "Request header fields are too large";
	case 500:
		return "Internal server error";
	case 501:
		return "Not implemented";
	case 503:
		return "Service unavailable";
	}
	return "HTTP error";
}

int wire_write_answer(struct evbuffer *out, const struct wire_head *h, const char *request_id,
		      const char *text, uint64_t retry_after)
{
	_cleanup_free_ char *body = NULL;
	json_t *o = reply_error_body(text);
	struct evbuffer *ans;
	char date[64], retry[48] = "";
	struct tm tm;
	time_t now = time(NULL);
	size_t blen = 0;
	int r;

	body = o ? jo_dumps(o, &blen) : NULL;
	json_decref(o);
	if (!body)
		return -ENOMEM;
	/* jo_dumps() leaves room for one more byte: the final newline every answer ends with. */
	body[blen++] = '\n';
	if (!gmtime_r(&now, &tm) || !strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm))
		date[0] = '\0';
	if (retry_after)
		snprintf(retry, sizeof(retry), "Retry-After: %llu\r\n",
			 (unsigned long long)retry_after);
	ans = evbuffer_new();
	if (!ans)
		return -ENOMEM;
	r = evbuffer_add_printf(ans,
				"%.*s\r\n"
				"Content-Type: application/json\r\n"
				"X-Request-Id: %s\r\n"
				"Cache-Control: no-store\r\n"
				"%s%s%s"
				"%s"
				"%s"
				"Content-Length: %zu\r\n"
				"\r\n",
				(int)h->line_len, h->line, request_id, *date ? "Date: " : "", date,
				*date ? "\r\n" : "", retry, h->close ? "Connection: close\r\n" : "",
				blen);
	if (r >= 0)
		r = evbuffer_add(ans, body, blen);
	/* All or nothing: moving the chains does not allocate. */
	if (r >= 0)
		r = evbuffer_add_buffer(out, ans);
	evbuffer_free(ans);
	return r < 0 ? -ENOMEM : 0;
}
