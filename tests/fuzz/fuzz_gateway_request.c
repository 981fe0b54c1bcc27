/* fuzz_gateway_request.c - the gateway's validation of a POST /execute request
 * (gatewayd/request.c: req_parse_execute() and req_is_json_type()), the first code that reads
 * what a network client sends once evhttp has framed it.
 *
 * Input layout: byte 0 picks the Content-Type (a fixed one, none, or the text up to the first
 * newline, as evhttp hands over a header: a C string) and the configured caps; the rest is the
 * body, passed with its length and not NUL-terminated, as http.c passes evbuffer_pullup().
 *
 * Checked: the status is 0, 400 or 413 with a UTF-8 error text; the depth guard agrees with
 * what the parser builds; an accepted request has a script and limits within the caps, and the
 * SUBMIT frame the gateway makes of it decodes back to the same script and limits.
 */
#include "fuzz.h"

#include <errno.h>

#include "jsonout.h"
#include "proto.h"
#include "reply.h"
#include "request.h"

static const char *const types[] = {
    "application/json",
    "application/json; charset=utf-8",
    "Application/Problem+JSON ; q=1",
    "text/plain",
    NULL, /* no Content-Type header */
    "application/+json",
};

static void check_error_text(int status, const char *err)
{
	json_t *body;
	size_t len;
	char *text;

	FZ_CHECK(status == 400 || status == 413, "status %d", status);
	FZ_CHECK(err && *err && strlen(err) < 160, "error text");
	FZ_CHECK(fz_utf8_valid(err, strlen(err)), "error text is not UTF-8");
	body = reply_error_body(err);
	FZ_CHECK(body, "reply_error_body failed");
	text = jo_dumps(body, &len);
	fz_check_dump(text, len, body, "error body");
	free(text);
	json_decref(body);
}

/* What http.c does next with an accepted request: a SUBMIT to sandboxd. */
static void check_submit(const struct exec_params *p)
{
	struct proto_submit s = {.timeout_ms = p->timeout_ms,
				 .memory_mb = p->memory_mb,
				 .script = p->script,
				 .script_len = (uint32_t)p->script_len};
	struct proto_buf b = {0};
	struct proto_submit got;
	struct proto_hdr h;
	long n;

	FZ_CHECK(proto_encode_submit(&b, 7, &s) == 0, "SUBMIT does not encode");
	n = proto_frame_check(b.data, b.len, &h);
	FZ_CHECK(n > 0 && (size_t)n == b.len && h.type == PROTO_SUBMIT && h.job_id == 7,
		 "SUBMIT frame check %ld", n);
	FZ_CHECK(proto_decode_submit(b.data + PROTO_HDR_SIZE, h.length, &got) == 0,
		 "SUBMIT does not decode");
	FZ_CHECK(got.timeout_ms == s.timeout_ms && got.memory_mb == s.memory_mb &&
		     got.script_len == s.script_len && !memcmp(got.script, s.script, s.script_len),
		 "SUBMIT decodes to another job");
	proto_buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct exec_limits lim = {.timeout_ms_max = 30000, .memory_mb_max = 512};
	char ctbuf[256], msg[160];
	const char *ct, *body, *err = NULL;
	struct exec_params p;
	json_error_t jerr;
	json_t *doc, *script;
	size_t len;
	int status;

	if (size == 0)
		return 0;
	/* gatewayd's defaults, or its largest allowed caps (config.c). */
	if (data[0] & 0x80) {
		lim.timeout_ms_max = 600000;
		lim.memory_mb_max = 65536;
	}
	body = (const char *)data + 1;
	len = size - 1;
	if ((data[0] & 0x7F) < sizeof(types) / sizeof(types[0])) {
		ct = types[data[0] & 0x7F];
	} else {
		const char *nl = memchr(body, '\n', len);
		size_t ctlen = nl ? (size_t)(nl - body) : len;

		if (ctlen >= sizeof(ctbuf))
			ctlen = sizeof(ctbuf) - 1;
		memcpy(ctbuf, body, ctlen);
		ctbuf[ctlen] = 0;
		ct = ctbuf;
		if (nl) {
			len -= (size_t)(nl + 1 - body);
			body = nl + 1;
		} else {
			body += len;
			len = 0;
		}
	}
	if (len == 0)
		body = ""; /* as http.c passes an empty body */

	status = req_parse_execute(ct, body, len, &lim, &p, &err, msg, sizeof(msg));
	if (status != 0) {
		check_error_text(status, err);
		FZ_CHECK(!p.doc && !p.script, "params left behind on %d", status);
		if (!strcmp(err, "Request JSON is nested too deeply (over 64 levels)")) {
			/* The guard may refuse only what nests deeper than 64, or is not JSON.
			 * Duplicates aside: {"a": [[...]], "a": 1} nests less than its text. */
			doc = json_loadb(body, len,
					 JSON_DECODE_ANY | JSON_ALLOW_NUL | JSON_REJECT_DUPLICATES,
					 &jerr);
			FZ_CHECK(!doc || fz_json_nesting(doc) > REQ_DEPTH_MAX,
				 "a body nested %u deep refused as too deep", fz_json_nesting(doc));
			json_decref(doc);
		}
		if (!strcmp(err, "Request must be JSON") && req_is_json_type(ct) && len > 0) {
			/* Then it is not an object, or not JSON at all. */
			doc = json_loadb(body, len, JSON_ALLOW_NUL, &jerr);
			FZ_CHECK(!doc || !json_is_object(doc), "a JSON object refused as not JSON");
			json_decref(doc);
		}
		return 0;
	}

	FZ_CHECK(req_is_json_type(ct), "accepted with Content-Type %s", ct ? ct : "(none)");
	FZ_CHECK(p.doc && json_is_object(p.doc), "accepted without an object");
	FZ_CHECK(fz_json_nesting(p.doc) <= REQ_DEPTH_MAX, "accepted a body nested %u deep",
		 fz_json_nesting(p.doc));
	script = json_object_get(p.doc, "script");
	FZ_CHECK(json_is_string(script) && p.script == json_string_value(script) &&
		     p.script_len == json_string_length(script),
		 "script does not point at the body's \"script\"");
	FZ_CHECK(p.script_len <= PROTO_SCRIPT_MAX, "script of %zu bytes", p.script_len);
	FZ_CHECK(fz_utf8_valid(p.script, p.script_len), "script is not UTF-8");
	FZ_CHECK(p.timeout_ms == 0 || (p.timeout_ms >= 100 && p.timeout_ms <= lim.timeout_ms_max),
		 "timeout_ms %u", p.timeout_ms);
	FZ_CHECK(p.memory_mb == 0 || (p.memory_mb >= 32 && p.memory_mb <= lim.memory_mb_max),
		 "memory_mb %u", p.memory_mb);
	FZ_CHECK(p.want_stderr == json_is_true(json_object_get(p.doc, "stderr")), "stderr flag");
	check_submit(&p);
	exec_params_free(&p);
	FZ_CHECK(!p.doc, "exec_params_free kept the body");
	return 0;
}
