/* fuzz_runframe.c - rf_parse() (sandboxd/runframe.c): the frame a job writes on its result fd
 * from inside the jail, the one parser in the root daemon that reads what a script controls.
 *
 * A frame it accepts is carried on the way sandboxd's build_result() and the gateway carry it:
 * the value re-encoded with jo_dumps_compact() (must succeed: no NUL, valid UTF-8, the same value
 * when parsed back), put in a RESULT frame, decoded, and turned into the HTTP body, whose
 * "result" must still be that value. Texts must stay valid UTF-8 after their cut.
 */
#include "fuzz.h"

#include <errno.h>
#include <stdint.h>

#include "jsonout.h"
#include "proto.h"
#include "reply.h"
#include "runframe.h"

/* sandboxd -> RESULT frame -> gatewayd -> body: the value that comes out is the value that went
 * in. */
static void through_the_gateway(const struct rf_frame *f, const char *json, size_t json_len)
{
	struct proto_result res = {
	    .verdict = PROTO_V_OK, .message = "", .result = json, .result_len = (uint32_t)json_len};
	struct proto_buf b = {0};
	struct proto_result got;
	struct proto_hdr h;
	struct gw_reply rep;
	size_t body_len;
	char *body;
	long n;

	FZ_CHECK(proto_encode_result(&b, 1, &res) == 0, "RESULT does not encode");
	n = proto_frame_check(b.data, b.len, &h);
	FZ_CHECK(n > 0 && (size_t)n == b.len && h.type == PROTO_RESULT, "RESULT frame check %ld",
		 n);
	FZ_CHECK(proto_decode_result(b.data + PROTO_HDR_SIZE, h.length, &got) == 0,
		 "RESULT does not decode");
	FZ_CHECK(reply_from_result(&got, false, &rep) == 0, "reply_from_result failed");
	FZ_CHECK(rep.status == 200, "status %d (%s) for a value sandboxd accepted", rep.status,
		 rep.problem ? rep.problem : "");
	FZ_CHECK(fz_json_same(json_object_get(rep.body, "result"), f->result),
		 "the gateway's result is another value");
	body = jo_dumps(rep.body, &body_len);
	fz_check_dump(body, body_len, rep.body, "jo_dumps(body)");
	free(body);
	json_decref(rep.body);
	proto_buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rf_frame f;
	const char *why = NULL;
	size_t json_len = 0, mlen;
	char *json;
	int r;

	r = rf_parse(data, size, &f, &why);
	FZ_CHECK(why, "no reason");
	if (r < 0) {
		FZ_CHECK(r == (size ? -EBADMSG : -ENODATA), "rf_parse returned %d", r);
		FZ_CHECK(*why && fz_utf8_valid(why, strlen(why)), "an empty reason");
		FZ_CHECK(!f.result, "a value left behind on failure");
		return 0;
	}
	FZ_CHECK(r == 0, "rf_parse returned %d", r);
	FZ_CHECK(size >= 8 && !memcmp(data, RF_MAGIC, 4), "accepted without the magic");

	switch (f.status) {
	case RF_OK:
		FZ_CHECK(f.result, "ok without a value");
		FZ_CHECK(fz_json_nesting(f.result) <= RF_MAX_DEPTH,
			 "a result nested %u deep was accepted", fz_json_nesting(f.result));
		json = jo_dumps_compact(f.result, &json_len);
		fz_check_dump(json, json_len, f.result, "jo_dumps_compact(result)");
		FZ_CHECK(json_len <= PROTO_RESULT_MAX, "over the RESULT cap");
		through_the_gateway(&f, json, json_len);
		free(json);
		break;
	case RF_ERROR:
	case RF_BAD_RESULT:
		/* NUL-terminated inside the array, cut on a character boundary. */
		mlen = strnlen(f.message, sizeof(f.message));
		FZ_CHECK(mlen < sizeof(f.message), "message not terminated");
		FZ_CHECK(fz_utf8_valid(f.message, mlen), "message cut inside a character");
		FZ_CHECK(f.status == RF_ERROR || !strncmp(f.message, "Result ", 7),
			 "a bad_result text that is not the runner's: %s", f.message);
		FZ_CHECK(!f.result, "a value with a text");
		break;
	case RF_EXIT:
		FZ_CHECK(f.code >= INT32_MIN && f.code <= INT32_MAX, "exit code %lld", f.code);
		break;
	case RF_NO_MAIN:
		break;
	default:
		FZ_CHECK(0, "status %d", (int)f.status);
	}
	rf_frame_clear(&f);
	FZ_CHECK(!f.result, "rf_frame_clear kept the value");
	return 0;
}
