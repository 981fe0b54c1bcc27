/* request.c - see request.h. The texts here are the API contract (SEED.md): clients match
 * on them, so they change only with the contract. */
#include "request.h"

#include <errno.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>

#include "jsonout.h"
#include "proto.h"

static bool is_blank(char c)
{
	return c == ' ' || c == '\t';
}

/* RFC 9110 5.6.2: token = 1*tchar */
static bool is_token(const char *s)
{
	static const char extra[] = "!#$%&'*+-.^_`|~";

	if (!*s)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || strchr(extra, *s)))
			return false;
	return true;
}

const char *req_framing_error(const struct evkeyvalq *headers)
{
	const struct evkeyval *h;
	unsigned n_length = 0, n_encoding = 0;
	const char *encoding = NULL;

	TAILQ_FOREACH(h, headers, next)
	{
		if (!is_token(h->key))
			return "Bad request: invalid header name";
		if (strcasecmp(h->key, "Content-Length") == 0) {
			n_length++;
			/* evhttp takes "+5" or " 5" too; a proxy may not. */
			if (!*h->value || strspn(h->value, "0123456789") != strlen(h->value))
				return "Bad request: invalid Content-Length";
		} else if (strcasecmp(h->key, "Transfer-Encoding") == 0) {
			n_encoding++;
			encoding = h->value;
		}
	}
	if (n_length > 1)
		return "Bad request: more than one Content-Length";
	if (n_encoding > 1 || (encoding && strcasecmp(encoding, "chunked") != 0))
		return "Bad request: unsupported Transfer-Encoding";
	if (n_encoding && n_length)
		return "Bad request: both Transfer-Encoding and Content-Length";
	return NULL;
}

bool req_is_json_type(const char *ct)
{
	const char *start, *end, *rest;
	size_t len;

	if (!ct)
		return false;
	while (is_blank(*ct))
		ct++;
	start = ct;
	while (*ct && *ct != ';' && !is_blank(*ct))
		ct++;
	end = ct;
	rest = end;
	while (is_blank(*rest))
		rest++;
	if (*rest && *rest != ';')
		return false;
	len = (size_t)(end - start);
	if (len == 16 && strncasecmp(start, "application/json", 16) == 0)
		return true;
	/* application/problem+json, application/vnd.foo+json, ... */
	return len > 17 && strncasecmp(start, "application/", 12) == 0 &&
	       strncasecmp(end - 5, "+json", 5) == 0;
}

/* An optional integer member within [lo, hi]. null counts as absent: clients that serialise an
 * unset option as null mean "the default". Booleans and reals are not integers here. */
static int get_limit(json_t *obj, const char *key, uint64_t lo, uint64_t hi, uint32_t *ret,
		     char *msg, size_t msg_len)
{
	json_t *v = json_object_get(obj, key);
	json_int_t n;

	*ret = 0;
	if (!v || json_is_null(v))
		return 0;
	if (json_is_integer(v)) {
		n = json_integer_value(v);
		if (n >= 0 && (uint64_t)n >= lo && (uint64_t)n <= hi) {
			*ret = (uint32_t)n;
			return 0;
		}
	}
	snprintf(msg, msg_len, "'%s' must be an integer between %llu and %llu", key,
		 (unsigned long long)lo, (unsigned long long)hi);
	return -EINVAL;
}

int req_parse_execute(const char *content_type, const char *body, size_t len,
		      const struct exec_limits *lim, struct exec_params *ret,
		      const char **ret_error, char *msg, size_t msg_len)
{
	json_error_t jerr;
	json_t *doc, *script, *v;

	memset(ret, 0, sizeof(*ret));
	if (!req_is_json_type(content_type) || len == 0) {
		*ret_error = "Request must be JSON";
		return 400;
	}
	/* Before parsing: the parser recurses once per level. */
	if (jo_too_deep(body, len, REQ_DEPTH_MAX)) {
		*ret_error = "Request JSON is nested too deeply (over 64 levels)";
		return 400;
	}
	/* With the length, never strlen(): the body may hold NUL bytes. ALLOW_NUL lets "\u0000"
	 * through inside strings: a script with a NUL is then the runner's to refuse, as CPython
	 * does ("source code string cannot contain null bytes"), with the same 400 a script error
	 * gets, rather than a misleading "Request must be JSON". */
	doc = json_loadb(body, len, JSON_ALLOW_NUL, &jerr);
	if (!doc && json_error_code(&jerr) == json_error_numeric_overflow) {
		/* Valid JSON that jansson cannot hold (an integer beyond 64 bits, 1e400): no value
		 * of ours accepts such a number, and "not JSON" would mislead. */
		*ret_error = "Request JSON has a number out of range";
		return 400;
	}
	if (!doc || !json_is_object(doc)) {
		json_decref(doc);
		*ret_error = "Request must be JSON";
		return 400;
	}
	ret->doc = doc;
	script = json_object_get(doc, "script");
	if (!script) {
		*ret_error = "Missing 'script' field";
		goto fail;
	}
	if (!json_is_string(script)) {
		*ret_error = "'script' must be a string";
		goto fail;
	}
	ret->script = json_string_value(script);
	ret->script_len = json_string_length(script);
	if (ret->script_len > PROTO_SCRIPT_MAX) {
		*ret_error = "Script is too large (over 1048576 bytes)";
		exec_params_free(ret);
		return 413;
	}
	if (get_limit(doc, "timeout_ms", 100, lim->timeout_ms_max, &ret->timeout_ms, msg, msg_len) <
		0 ||
	    get_limit(doc, "memory_mb", 32, lim->memory_mb_max, &ret->memory_mb, msg, msg_len) <
		0) {
		*ret_error = msg;
		goto fail;
	}
	v = json_object_get(doc, "stderr");
	if (v && !json_is_null(v) && !json_is_boolean(v)) {
		*ret_error = "'stderr' must be true or false";
		goto fail;
	}
	ret->want_stderr = json_is_true(v);
	return 0;
fail:
	exec_params_free(ret);
	return 400;
}

void exec_params_free(struct exec_params *p)
{
	json_decref(p->doc);
	memset(p, 0, sizeof(*p));
}
