/* fuzz_gateway_reply.c - the gateway's reading of a RESULT from sandboxd (gatewayd/reply.c:
 * reply_from_result()): the result JSON is parsed and re-encoded, the message and the captured
 * output decoded lossily into the body. fuzz_proto reaches it through whole frames; here the
 * fields come straight from the input, so the JSON path is not behind a length prefix.
 *
 * Input layout: byte 0 is the verdict (10 values: the 9 known and one past them), byte 1 the
 * flags, byte 2 bit 0 asks for stderr; the rest is the result text, the message, stdout and
 * stderr at once (each field sees all the bytes).
 *
 * Checked: a JSON body for every input, with "result" exactly when the status is 200; for an ok
 * verdict the value is the one the text holds (or a 500 when the text is not JSON, nests over
 * REPLY_RESULT_DEPTH_MAX, or holds a number jansson cannot hold); texts are the lossy decoding.
 */
#include "fuzz.h"

#include "jsonout.h"
#include "proto.h"
#include "reply.h"
#include "utf8.h"

static void check_text(json_t *body, const char *key, const char *raw, size_t raw_len)
{
	json_t *v = json_object_get(body, key);
	size_t n;
	char *want = utf8_lossy(raw, raw_len, &n);

	FZ_CHECK(want, "out of memory");
	FZ_CHECK(json_is_string(v) && json_string_length(v) == n &&
		     !memcmp(json_string_value(v), want, n),
		 "\"%s\" is not the lossy decoding of the bytes", key);
	free(want);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct proto_result res = {0};
	struct gw_reply rep;
	json_error_t jerr;
	json_t *want;
	bool want_stderr;
	size_t len;
	char *text;

	if (size < 3)
		return 0;
	res.verdict = data[0] % (PROTO_V__MAX + 1);
	res.flags = data[1];
	want_stderr = data[2] & 1;
	res.result = res.message = res.out = res.err = (const char *)data + 3;
	res.result_len = res.message_len = res.out_len = res.err_len = (uint32_t)(size - 3);

	FZ_CHECK(reply_from_result(&res, want_stderr, &rep) == 0, "reply_from_result failed");
	FZ_CHECK(rep.body && json_is_object(rep.body), "no body");
	FZ_CHECK((rep.status == 200) == !!json_object_get(rep.body, "result"),
		 "status %d does not match the body", rep.status);
	if (res.verdict == PROTO_V_OK) {
		want = jo_too_deep(res.result, res.result_len, REPLY_RESULT_DEPTH_MAX)
			   ? NULL
			   : json_loadb(res.result, res.result_len,
					JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
		if (want) {
			FZ_CHECK(rep.status == 200, "status %d for a JSON result", rep.status);
			FZ_CHECK(fz_json_same(json_object_get(rep.body, "result"), want),
				 "the body holds another value");
			json_decref(want);
		} else {
			FZ_CHECK(rep.status == 500 && rep.problem,
				 "status %d for a result that is not JSON", rep.status);
		}
	} else {
		FZ_CHECK(rep.status == 400 || rep.status == 500 || rep.status == 503, "status %d",
			 rep.status);
		if (size > 3)
			check_text(rep.body, "error", res.message, res.message_len);
	}
	/* Every script outcome carries the output; only the gateway's own 500 does not. */
	FZ_CHECK(json_object_get(rep.body, "stdout") || (rep.status == 500 && rep.problem),
		 "no stdout in a %d", rep.status);
	if (json_object_get(rep.body, "stdout")) {
		check_text(rep.body, "stdout", res.out, res.out_len);
		if (want_stderr)
			check_text(rep.body, "stderr", res.err, res.err_len);
	}
	FZ_CHECK(want_stderr || !json_object_get(rep.body, "stderr"), "stderr not asked for");

	text = jo_dumps(rep.body, &len);
	fz_check_dump(text, len, rep.body, "jo_dumps(body)");
	free(text);
	json_decref(rep.body);
	return 0;
}
