/* fuzz_proto.c - the sandboxd wire protocol's decoders (proto/proto.c), the daemon's whole attack
 * surface towards its clients and the gateway's towards the daemon.
 *
 * The input is read as a stream of frames, as both daemons read their sockets: proto_frame_check()
 * cuts it, and every decoder runs on every payload (and on the raw input, for the decoders'
 * own sake). A payload a decoder accepts must re-encode to the same bytes, and a whole frame to
 * the same frame: one byte string has one meaning. Decoded RESULTs and ERRORs also go through
 * the gateway's reply mapping (gatewayd/reply.c), which parses the result JSON.
 */
#include "fuzz.h"

#include <errno.h>

#include "jsonout.h"
#include "proto.h"
#include "reply.h"

static void check_same(const struct proto_buf *b, const uint8_t *want, size_t want_len, size_t skip,
		       const char *what)
{
	FZ_CHECK(b->len == skip + want_len, "%s: re-encoded to %zu bytes, want %zu", what,
		 b->len - skip, want_len);
	FZ_CHECK(!memcmp(b->data + skip, want, want_len), "%s: re-encoded to other bytes", what);
}

static void check_reply(const struct gw_reply *r, const char *what)
{
	size_t len;
	char *text;

	FZ_CHECK(r->status >= 200 && r->status <= 599, "%s: status %d", what, r->status);
	FZ_CHECK(r->body && json_is_object(r->body), "%s: no body", what);
	FZ_CHECK(json_object_get(r->body, "result") ||
		     json_is_string(json_object_get(r->body, "error")),
		 "%s: neither result nor error", what);
	FZ_CHECK((r->status == 200) == !!json_object_get(r->body, "result"),
		 "%s: status %d does not match the body", what, r->status);
	text = jo_dumps(r->body, &len);
	fz_check_dump(text, len, r->body, what);
	free(text);
	json_decref(r->body);
}

/* The gateway's answer to a RESULT: whatever sandboxd sent, a valid JSON body or -ENOMEM. */
static void gateway_result(const struct proto_result *res)
{
	struct gw_reply rep;

	for (int want_stderr = 0; want_stderr <= 1; want_stderr++) {
		FZ_CHECK(reply_from_result(res, want_stderr, &rep) == 0,
			 "reply_from_result failed");
		check_reply(&rep, "reply_from_result");
		if (res->verdict == PROTO_V_OK && rep.status != 200)
			FZ_CHECK(rep.problem, "a 500 for an ok verdict without a reason");
	}
	(void)reply_truncated(res->flags);
}

static void gateway_refusal(const struct proto_error *e)
{
	struct gw_reply rep;

	FZ_CHECK(reply_from_refusal(e, &rep) == 0, "reply_from_refusal failed");
	check_reply(&rep, "reply_from_refusal");
}

/* Runs every decoder on one payload. hdr is the frame's header (NULL for the raw input); a
 * decoder that accepts the payload must re-encode it byte for byte, and the whole frame too
 * when its type is the frame's. */
static void decode_all(const uint8_t *p, size_t len, const struct proto_hdr *hdr,
		       const uint8_t *frame)
{
	struct proto_buf b = {0};
	struct proto_submit s;
	struct proto_result r;
	struct proto_error e;
	struct proto_pong pg;
	uint64_t id = hdr ? hdr->job_id : 0;
	int rc;

	if (proto_decode_submit(p, len, &s) == 0) {
		FZ_CHECK(s.script_len <= PROTO_SCRIPT_MAX && s.flags == 0, "submit fields");
		FZ_CHECK(proto_encode_submit(&b, id, &s) == 0, "submit does not re-encode");
		check_same(&b, p, len, PROTO_HDR_SIZE, "submit payload");
		if (hdr && hdr->type == PROTO_SUBMIT)
			check_same(&b, frame, PROTO_HDR_SIZE + len, 0, "submit frame");
		proto_buf_reset(&b);
	}
	if (proto_decode_result(p, len, &r) == 0) {
		FZ_CHECK(r.verdict < PROTO_V__MAX, "verdict %u", r.verdict);
		FZ_CHECK(strcmp(proto_verdict_name(r.verdict), "unknown"), "verdict %u unnamed",
			 r.verdict);
		FZ_CHECK(proto_encode_result(&b, id, &r) == 0, "result does not re-encode");
		check_same(&b, p, len, PROTO_HDR_SIZE, "result payload");
		if (hdr && hdr->type == PROTO_RESULT)
			check_same(&b, frame, PROTO_HDR_SIZE + len, 0, "result frame");
		proto_buf_reset(&b);
		gateway_result(&r);
	}
	if (proto_decode_error(p, len, &e) == 0) {
		/* The encoder takes a C string (sandboxd's own texts): a message with a NUL in it
		 * cannot be re-encoded as it came, by design. */
		if (!memchr(e.message, 0, e.message_len)) {
			char *msg = malloc(e.message_len + 1);

			FZ_CHECK(msg, "out of memory");
			memcpy(msg, e.message, e.message_len);
			msg[e.message_len] = 0;
			rc = proto_encode_error(&b, id, e.code, msg);
			FZ_CHECK(rc == 0, "error does not re-encode: %d", rc);
			check_same(&b, p, len, PROTO_HDR_SIZE, "error payload");
			if (hdr && hdr->type == PROTO_ERROR)
				check_same(&b, frame, PROTO_HDR_SIZE + len, 0, "error frame");
			proto_buf_reset(&b);
			free(msg);
		}
		gateway_refusal(&e);
	}
	if (proto_decode_pong(p, len, &pg) == 0) {
		FZ_CHECK(pg.ready <= 1, "ready %u", pg.ready);
		FZ_CHECK(proto_encode_pong(&b, id, &pg) == 0, "pong does not re-encode");
		check_same(&b, p, len, PROTO_HDR_SIZE, "pong payload");
		if (hdr && hdr->type == PROTO_PONG)
			check_same(&b, frame, PROTO_HDR_SIZE + len, 0, "pong frame");
		proto_buf_reset(&b);
	}
	if (hdr && (hdr->type == PROTO_CANCEL || hdr->type == PROTO_PING)) {
		/* No payload (their cap is 0): the header alone must come back. */
		FZ_CHECK(len == 0, "%s with a %zu-byte payload passed the header check",
			 proto_type_name(hdr->type), len);
		rc = hdr->type == PROTO_CANCEL ? proto_encode_cancel(&b, id)
					       : proto_encode_ping(&b, id);
		FZ_CHECK(rc == 0, "cancel/ping does not encode");
		check_same(&b, frame, PROTO_HDR_SIZE, 0, "cancel/ping frame");
	}
	proto_buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct proto_hdr h, h2;
	size_t off = 0;
	long n;

	/* The raw input as a payload of each type. */
	decode_all(data, size, NULL, NULL);

	/* The input as a stream of frames, as a socket reader sees it. */
	while ((n = proto_frame_check(data + off, size - off, &h)) > 0) {
		FZ_CHECK((size_t)n == PROTO_HDR_SIZE + (size_t)h.length && (size_t)n <= size - off,
			 "frame size %ld for length %u", n, h.length);
		FZ_CHECK(h.length <= proto_payload_max(h.type), "length %u over the cap of type %u",
			 h.length, h.type);
		FZ_CHECK(proto_hdr_decode(data + off, &h2) == 0 && !memcmp(&h, &h2, sizeof(h)),
			 "frame check and header decode disagree");
		FZ_CHECK(h.magic == PROTO_MAGIC && h.version == PROTO_VERSION && h.flags == 0 &&
			     strcmp(proto_type_name(h.type), "unknown"),
			 "a bad header passed");
		decode_all(data + off + PROTO_HDR_SIZE, h.length, &h, data + off);
		off += (size_t)n;
	}
	if (n < 0) {
		FZ_CHECK(n == -EBADMSG || n == -EPROTONOSUPPORT || n == -EPROTO || n == -EMSGSIZE,
			 "frame check error %ld", n);
		FZ_CHECK(size - off >= PROTO_HDR_SIZE, "an error before a whole header");
		FZ_CHECK(proto_hdr_decode(data + off, &h2) == (int)n,
			 "frame check and header decode disagree on the error");
	} else if (size - off >= PROTO_HDR_SIZE) {
		/* Incomplete: the header was good and announced more than there is. */
		FZ_CHECK(proto_hdr_decode(data + off, &h2) == 0 &&
			     (size_t)h2.length > size - off - PROTO_HDR_SIZE,
			 "frame check wants more bytes for a complete frame");
	}
	return 0;
}
