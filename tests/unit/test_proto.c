/* test_proto.c - unit tests for the wire protocol (proto.c) and the blocking helpers (fdio.c).
 *
 * The decoders face every client of a root daemon, so besides round trips this pins the byte
 * layout to PROTOCOL.md with hand-written frames and feeds the parsers random and mutated input
 * (run it under -DPYEXEC_SANITIZE=ON: a stray read must show up as an ASan report, which is
 * why every buffer handed to a decoder is a heap copy of exactly its length).
 */
#include "check.h"
#include "proto.h"
#include "cleanup.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define _cleanup_buf_ __attribute__((cleanup(proto_buf_free)))


static void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (!p) {
		perror("malloc");
		exit(99);
	}
	return p;
}

/* Test plumbing that cannot fail on a sane host; if it does, the test cannot say anything. */
static void xsocketpair(int sv[2])
{
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		perror("socketpair");
		exit(99);
	}
}

/* A heap copy of exactly n bytes, so ASan sees any read past the end. */
static uint8_t *dup_exact(const void *src, size_t n)
{
	uint8_t *p = xmalloc(n);

	if (n)
		memcpy(p, src, n);
	return p;
}

/* Big-endian writers for hand-built frames. */
static uint8_t *be16(uint8_t *p, uint16_t v)
{
	*p++ = (uint8_t)(v >> 8);
	*p++ = (uint8_t)v;
	return p;
}

static uint8_t *be32(uint8_t *p, uint32_t v)
{
	p = be16(p, (uint16_t)(v >> 16));
	return be16(p, (uint16_t)v);
}

static uint8_t *be64(uint8_t *p, uint64_t v)
{
	p = be32(p, (uint32_t)(v >> 32));
	return be32(p, (uint32_t)v);
}

static void mkhdr(uint8_t *p, uint32_t magic, uint16_t version, uint16_t type, uint32_t length,
		  uint32_t flags, uint64_t job_id)
{
	p = be32(p, magic);
	p = be16(p, version);
	p = be16(p, type);
	p = be32(p, length);
	p = be32(p, flags);
	be64(p, job_id);
}

/* Splits a buffer holding exactly one frame; false when it is not exactly one valid frame. */
static bool split_frame(const struct proto_buf *b, struct proto_hdr *h, const uint8_t **payload)
{
	long n = proto_frame_check(b->data, b->len, h);

	if (n <= 0 || (size_t)n != b->len)
		return false;
	*payload = b->data + PROTO_HDR_SIZE;
	return true;
}

static bool mem_eq(const void *a, uint32_t alen, const void *b, uint32_t blen)
{
	return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

static void test_payload_max(void)
{
	CHECK(proto_payload_max(PROTO_SUBMIT) == 16 + PROTO_SCRIPT_MAX, "payload_max(SUBMIT)");
	CHECK(proto_payload_max(PROTO_CANCEL) == 0, "payload_max(CANCEL) == 0");
	CHECK(proto_payload_max(PROTO_PING) == 0, "payload_max(PING) == 0");
	CHECK(proto_payload_max(PROTO_RESULT) ==
		  40 + PROTO_MESSAGE_MAX + PROTO_RESULT_MAX + PROTO_STDOUT_MAX + PROTO_STDERR_MAX,
	      "payload_max(RESULT)");
	CHECK(proto_payload_max(PROTO_ERROR) == 8 + PROTO_MESSAGE_MAX, "payload_max(ERROR)");
	CHECK(proto_payload_max(PROTO_PONG) == 24 + PROTO_MESSAGE_MAX, "payload_max(PONG)");
	CHECK(proto_payload_max(0) == 0 && proto_payload_max(4) == 0 &&
		  proto_payload_max(19) == 0 && proto_payload_max(0xffff) == 0,
	      "payload_max(unknown types) == 0");
}

static void test_names(void)
{
	CHECK(!strcmp(proto_type_name(PROTO_SUBMIT), "submit") &&
		  !strcmp(proto_type_name(PROTO_PONG), "pong") &&
		  !strcmp(proto_type_name(99), "unknown"),
	      "proto_type_name");
	CHECK(!strcmp(proto_verdict_name(PROTO_V_OK), "ok") &&
		  !strcmp(proto_verdict_name(PROTO_V_NO_MAIN), "no_main") &&
		  !strcmp(proto_verdict_name(PROTO_V_BAD_RESULT), "bad_result") &&
		  !strcmp(proto_verdict_name(PROTO_V_SANDBOX_ERROR), "sandbox_error") &&
		  !strcmp(proto_verdict_name(PROTO_V_CANCELLED), "cancelled") &&
		  !strcmp(proto_verdict_name(PROTO_V__MAX), "unknown"),
	      "proto_verdict_name");
}

/* The exact bytes of a SUBMIT, written by hand from PROTOCOL.md. */
static void test_submit_bytes(void)
{
	/* One row per field, as in PROTOCOL.md (hence no clang-format). */
	/* clang-format off */
	static const uint8_t want[] = {
		'P', 'X', 'E', 'C',                             /* magic */
		0x00, 0x01,                                     /* version */
		0x00, 0x01,                                     /* type SUBMIT */
		0x00, 0x00, 0x00, 0x13,                         /* length 16 + 3 */
		0x00, 0x00, 0x00, 0x00,                         /* flags */
		0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, /* job id */
		0x00, 0x00, 0x75, 0x30,                         /* timeout_ms 30000 */
		0x00, 0x00, 0x01, 0x00,                         /* memory_mb 256 */
		0x00, 0x00, 0x00, 0x00,                         /* flags */
		0x00, 0x00, 0x00, 0x03, 'a', 0x00, 'b',         /* script_len, script */
	};
	/* clang-format on */
	struct proto_submit s = {
	    .timeout_ms = 30000, .memory_mb = 256, .script = "a\0b", .script_len = 3};
	_cleanup_buf_ struct proto_buf b = {0};

	CHECK(proto_encode_submit(&b, 0x0102030405060708ull, &s) == 0 && b.len == sizeof(want) &&
		  !memcmp(b.data, want, sizeof(want)),
	      "SUBMIT encodes to the documented bytes");
}

/* The exact bytes of a RESULT. */
static void test_result_bytes(void)
{
	/* clang-format off */
	static const uint8_t want[] = {
		'P', 'X', 'E', 'C', 0x00, 0x01,                 /* magic, version */
		0x00, 0x10,                                     /* type RESULT */
		0x00, 0x00, 0x00, 0x2f,                         /* length 40 + 1 + 2 + 3 + 1 */
		0x00, 0x00, 0x00, 0x00,                         /* flags */
		0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x07, /* job id */
		0x00, 0x02,                                     /* verdict error */
		0x00, 0x01,                                     /* flags: stdout truncated */
		0x00, 0x00, 0x01, 0x02,                         /* wall_ms 258 */
		0x00, 0x00, 0x00, 0x03,                         /* cpu_ms 3 */
		0x00, 0x00, 0x00, 0x01,                         /* exit_code 1 */
		0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, /* peak_memory 4 GiB */
		0x00, 0x00, 0x00, 0x01, 'm',                    /* message */
		0x00, 0x00, 0x00, 0x02, '4', '2',               /* result */
		0x00, 0x00, 0x00, 0x03, 'o', 'u', 't',          /* stdout */
		0x00, 0x00, 0x00, 0x01, 'e',                    /* stderr */
	};
	/* clang-format on */
	struct proto_result r = {
	    .verdict = PROTO_V_ERROR,
	    .flags = PROTO_F_STDOUT_TRUNCATED,
	    .wall_ms = 258,
	    .cpu_ms = 3,
	    .exit_code = 1,
	    .peak_memory = 1ull << 32,
	    .message = "m",
	    .message_len = 1,
	    .result = "42",
	    .result_len = 2,
	    .out = "out",
	    .out_len = 3,
	    .err = "e",
	    .err_len = 1,
	};
	_cleanup_buf_ struct proto_buf b = {0};

	CHECK(proto_encode_result(&b, 7, &r) == 0 && b.len == sizeof(want) &&
		  !memcmp(b.data, want, sizeof(want)),
	      "RESULT encodes to the documented bytes");
}

/* The exact bytes of an ERROR and a PONG. */
static void test_error_pong_bytes(void)
{
	/* clang-format off */
	static const uint8_t want_err[] = {
		'P', 'X', 'E', 'C', 0x00, 0x01,                 /* magic, version */
		0x00, 0x11,                                     /* type ERROR */
		0x00, 0x00, 0x00, 0x0a,                         /* length 8 + 2 */
		0x00, 0x00, 0x00, 0x00,                         /* flags */
		0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* job id 0 */
		0x00, 0x02,                                     /* code BUSY */
		0x00, 0x00,                                     /* reserved */
		0x00, 0x00, 0x00, 0x02, 'h', 'i',               /* msg_len, msg */
	};
	static const uint8_t want_pong[] = {
		'P', 'X', 'E', 'C', 0x00, 0x01,                 /* magic, version */
		0x00, 0x12,                                     /* type PONG */
		0x00, 0x00, 0x00, 0x19,                         /* length 24 + 1 */
		0x00, 0x00, 0x00, 0x00,                         /* flags */
		0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05, /* job id */
		0x00, 0x00,                                     /* ready 0 */
		0x00, 0x02,                                     /* cgroup_version 2 */
		0x00, 0x00, 0x00, 0x01,                         /* running */
		0x00, 0x00, 0x00, 0x02,                         /* queued */
		0x00, 0x00, 0x00, 0x04,                         /* max_running */
		0x00, 0x00, 0x00, 0x40,                         /* max_queued */
		0x00, 0x00, 0x00, 0x01, 'x',                    /* reason_len, reason */
	};
	/* clang-format on */
	struct proto_pong pg = {.cgroup_version = 2,
				.running = 1,
				.queued = 2,
				.max_running = 4,
				.max_queued = 64,
				.reason = "x",
				.reason_len = 1};
	_cleanup_buf_ struct proto_buf b = {0};

	CHECK(proto_encode_error(&b, 0, PROTO_E_BUSY, "hi") == 0 && b.len == sizeof(want_err) &&
		  !memcmp(b.data, want_err, sizeof(want_err)),
	      "ERROR encodes to the documented bytes");
	proto_buf_reset(&b);
	CHECK(proto_encode_pong(&b, 5, &pg) == 0 && b.len == sizeof(want_pong) &&
		  !memcmp(b.data, want_pong, sizeof(want_pong)),
	      "PONG encodes to the documented bytes");
}

static void roundtrip_submit(const char *what, const char *script, uint32_t len, uint64_t job_id)
{
	struct proto_submit s = {
	    .timeout_ms = 1234, .memory_mb = 77, .script = script, .script_len = len};
	_cleanup_buf_ struct proto_buf b = {0};
	_cleanup_free_ uint8_t *pl = NULL;
	const uint8_t *payload;
	struct proto_submit d;
	struct proto_hdr h;
	bool ok;

	ok = proto_encode_submit(&b, job_id, &s) == 0 && split_frame(&b, &h, &payload) &&
	     h.type == PROTO_SUBMIT && h.job_id == job_id && h.length == 16 + len;
	if (ok) {
		pl = dup_exact(payload, h.length);
		ok = proto_decode_submit(pl, h.length, &d) == 0 && d.timeout_ms == 1234 &&
		     d.memory_mb == 77 && d.flags == 0 &&
		     mem_eq(d.script, d.script_len, script, len);
	}
	CHECK(ok, "SUBMIT round trip: %s", what);
}

static void test_submit(void)
{
	static const char with_nul[] = "def main():\n\treturn 'a\0b'\n\0# tail";
	struct proto_submit s = {0};
	_cleanup_buf_ struct proto_buf b = {0};
	_cleanup_free_ char *big = NULL;

	roundtrip_submit("script with embedded NUL bytes", with_nul, sizeof(with_nul), 42);
	roundtrip_submit("empty script (NULL pointer)", NULL, 0, 0);
	roundtrip_submit("empty script", "", 0, UINT64_MAX);

	big = xmalloc(PROTO_SCRIPT_MAX + 1);
	memset(big, '#', PROTO_SCRIPT_MAX + 1);
	roundtrip_submit("script of exactly PROTO_SCRIPT_MAX bytes", big, PROTO_SCRIPT_MAX, 1);

	s.script = big;
	s.script_len = PROTO_SCRIPT_MAX + 1;
	CHECK(proto_encode_submit(&b, 1, &s) == -EMSGSIZE && b.len == 0,
	      "SUBMIT encoder refuses a script over the cap, buffer untouched");
	s.script_len = 1;
	s.flags = 1;
	CHECK(proto_encode_submit(&b, 1, &s) == -EINVAL && b.len == 0,
	      "SUBMIT encoder refuses non-zero reserved flags");
}

static void test_cancel_ping(void)
{
	_cleanup_buf_ struct proto_buf b = {0};
	const uint8_t *payload;
	struct proto_hdr h;

	CHECK(proto_encode_cancel(&b, 9) == 0 && split_frame(&b, &h, &payload) &&
		  h.type == PROTO_CANCEL && h.length == 0 && h.job_id == 9 &&
		  b.len == PROTO_HDR_SIZE,
	      "CANCEL round trip (header only)");
	proto_buf_reset(&b);
	CHECK(proto_encode_ping(&b, 10) == 0 && split_frame(&b, &h, &payload) &&
		  h.type == PROTO_PING && h.length == 0 && h.job_id == 10 &&
		  b.len == PROTO_HDR_SIZE,
	      "PING round trip (header only)");
}

static bool result_eq(const struct proto_result *a, const struct proto_result *b)
{
	return a->verdict == b->verdict && a->flags == b->flags && a->wall_ms == b->wall_ms &&
	       a->cpu_ms == b->cpu_ms && a->exit_code == b->exit_code &&
	       a->peak_memory == b->peak_memory &&
	       mem_eq(a->message, a->message_len, b->message, b->message_len) &&
	       mem_eq(a->result, a->result_len, b->result, b->result_len) &&
	       mem_eq(a->out, a->out_len, b->out, b->out_len) &&
	       mem_eq(a->err, a->err_len, b->err, b->err_len);
}

static bool roundtrip_result(const struct proto_result *r, uint64_t job_id)
{
	_cleanup_buf_ struct proto_buf b = {0};
	_cleanup_free_ uint8_t *pl = NULL;
	const uint8_t *payload;
	struct proto_result d;
	struct proto_hdr h;

	if (proto_encode_result(&b, job_id, r) < 0 || !split_frame(&b, &h, &payload) ||
	    h.type != PROTO_RESULT || h.job_id != job_id)
		return false;
	pl = dup_exact(payload, h.length);
	return proto_decode_result(pl, h.length, &d) == 0 && result_eq(&d, r);
}

static void test_result(void)
{
	struct proto_result r = {
	    .verdict = PROTO_V_OK,
	    .flags = PROTO_F_STDOUT_TRUNCATED | PROTO_F_STDERR_TRUNCATED,
	    .wall_ms = 0xdeadbeef,
	    .cpu_ms = 17,
	    .exit_code = 137,
	    .peak_memory = 0x123456789abcdef0ull,
	    .message = "",
	    .message_len = 0,
	    .result = "{\"a\":\"\\u0000\"}",
	    .result_len = 14,
	    .out = "line\0with nul\n",
	    .out_len = 14,
	    .err = "\xff\xfe not utf-8",
	    .err_len = 12,
	};
	_cleanup_buf_ struct proto_buf b = {0};
	struct proto_result empty = {.verdict = PROTO_V_TIMEOUT};
	_cleanup_free_ char *big = NULL;
	bool all = true;

	CHECK(roundtrip_result(&r, 3), "RESULT round trip: all fields, NUL bytes, invalid UTF-8");
	CHECK(roundtrip_result(&empty, 4), "RESULT round trip: all blobs empty (NULL pointers)");
	for (uint16_t v = 0; v < PROTO_V__MAX; v++) {
		r.verdict = v;
		all = all && roundtrip_result(&r, v);
	}
	CHECK(all, "RESULT round trip: every verdict");

	big = xmalloc(PROTO_RESULT_MAX + 1);
	memset(big, 'x', PROTO_RESULT_MAX + 1);
	r.verdict = PROTO_V_OK;
	r.message = big;
	r.message_len = PROTO_MESSAGE_MAX;
	r.result = big;
	r.result_len = PROTO_RESULT_MAX;
	r.out = big;
	r.out_len = PROTO_STDOUT_MAX;
	r.err = big;
	r.err_len = PROTO_STDERR_MAX;
	CHECK(proto_encode_result(&b, 1, &r) == 0 &&
		  b.len == PROTO_HDR_SIZE + proto_payload_max(PROTO_RESULT),
	      "RESULT with every blob at its cap is exactly payload_max");
	CHECK(roundtrip_result(&r, 1), "RESULT round trip: every blob at its cap");

	proto_buf_reset(&b);
	r.message_len = PROTO_MESSAGE_MAX + 1;
	CHECK(proto_encode_result(&b, 1, &r) == -EMSGSIZE, "RESULT encoder: message over cap");
	r.message_len = 0;
	r.result_len = PROTO_RESULT_MAX + 1;
	CHECK(proto_encode_result(&b, 1, &r) == -EMSGSIZE, "RESULT encoder: result over cap");
	r.result_len = 0;
	r.out_len = PROTO_STDOUT_MAX + 1;
	CHECK(proto_encode_result(&b, 1, &r) == -EMSGSIZE, "RESULT encoder: stdout over cap");
	r.out_len = 0;
	r.err_len = PROTO_STDERR_MAX + 1;
	CHECK(proto_encode_result(&b, 1, &r) == -EMSGSIZE, "RESULT encoder: stderr over cap");
	r.err_len = 0;
	r.verdict = PROTO_V__MAX;
	CHECK(proto_encode_result(&b, 1, &r) == -EINVAL, "RESULT encoder: verdict out of range");
	r.verdict = PROTO_V_OK;
	r.flags = 0x4;
	CHECK(proto_encode_result(&b, 1, &r) == -EINVAL && b.len == 0,
	      "RESULT encoder: unknown flag; buffer untouched by all refusals");
}

static bool roundtrip_error(uint16_t code, const char *msg, const char *want, uint32_t want_len)
{
	_cleanup_buf_ struct proto_buf b = {0};
	_cleanup_free_ uint8_t *pl = NULL;
	const uint8_t *payload;
	struct proto_error e;
	struct proto_hdr h;

	if (proto_encode_error(&b, 11, code, msg) < 0 || !split_frame(&b, &h, &payload) ||
	    h.type != PROTO_ERROR || h.job_id != 11)
		return false;
	pl = dup_exact(payload, h.length);
	return proto_decode_error(pl, h.length, &e) == 0 && e.code == code &&
	       mem_eq(e.message, e.message_len, want, want_len);
}

static void test_error(void)
{
	char long_msg[PROTO_MESSAGE_MAX + 100];

	CHECK(roundtrip_error(PROTO_E_BUSY, "queue full", "queue full", 10), "ERROR round trip");
	CHECK(roundtrip_error(PROTO_E_PROTOCOL, "", "", 0), "ERROR round trip: empty message");
	CHECK(roundtrip_error(PROTO_E_INTERNAL, NULL, "", 0), "ERROR round trip: NULL message");
	CHECK(roundtrip_error(0xffff, "x", "x", 1), "ERROR round trip: unknown code kept");

	memset(long_msg, 'a', sizeof(long_msg) - 1);
	long_msg[sizeof(long_msg) - 1] = '\0';
	CHECK(roundtrip_error(PROTO_E_INVALID, long_msg, long_msg, PROTO_MESSAGE_MAX),
	      "ERROR encoder truncates a long message to PROTO_MESSAGE_MAX");
	/* "é" (C3 A9) straddling the cap: the cut falls before its first byte. */
	long_msg[PROTO_MESSAGE_MAX - 1] = '\xc3';
	long_msg[PROTO_MESSAGE_MAX] = '\xa9';
	CHECK(roundtrip_error(PROTO_E_INVALID, long_msg, long_msg, PROTO_MESSAGE_MAX - 1),
	      "ERROR encoder truncates on a UTF-8 character boundary");
	long_msg[PROTO_MESSAGE_MAX] = '\0';
	CHECK(roundtrip_error(PROTO_E_INVALID, long_msg, long_msg, PROTO_MESSAGE_MAX),
	      "ERROR encoder keeps a message of exactly PROTO_MESSAGE_MAX bytes");
}

static void test_pong(void)
{
	struct proto_pong pg = {.ready = 1,
				.cgroup_version = 2,
				.running = 3,
				.queued = 4,
				.max_running = 5,
				.max_queued = 0xffffffff,
				.reason = "a\0b",
				.reason_len = 3};
	_cleanup_buf_ struct proto_buf b = {0};
	_cleanup_free_ uint8_t *pl = NULL;
	char reason[PROTO_MESSAGE_MAX + 1];
	const uint8_t *payload;
	struct proto_pong d;
	struct proto_hdr h;

	CHECK(proto_encode_pong(&b, 12, &pg) == 0 && split_frame(&b, &h, &payload) &&
		  h.type == PROTO_PONG && h.job_id == 12 && (pl = dup_exact(payload, h.length)) &&
		  proto_decode_pong(pl, h.length, &d) == 0 && d.ready == 1 &&
		  d.cgroup_version == 2 && d.running == 3 && d.queued == 4 && d.max_running == 5 &&
		  d.max_queued == 0xffffffff && mem_eq(d.reason, d.reason_len, "a\0b", 3),
	      "PONG round trip");
	proto_buf_reset(&b);
	memset(reason, 'r', sizeof(reason));
	pg.reason = reason;
	pg.reason_len = PROTO_MESSAGE_MAX + 1;
	CHECK(proto_encode_pong(&b, 1, &pg) == -EMSGSIZE, "PONG encoder: reason over cap");
	pg.reason_len = 0;
	pg.ready = 2;
	CHECK(proto_encode_pong(&b, 1, &pg) == -EINVAL && b.len == 0,
	      "PONG encoder: ready must be 0 or 1");
}

/* Several frames in one buffer, the way a stream reader sees them. */
static void test_stream(void)
{
	_cleanup_buf_ struct proto_buf b = {0};
	struct proto_submit s = {.script = "def main(): pass", .script_len = 16};
	struct proto_hdr h;
	size_t off = 0;
	long n;
	int count = 0;
	bool ok = true;

	ok = proto_encode_ping(&b, 1) == 0 && proto_encode_submit(&b, 2, &s) == 0 &&
	     proto_encode_cancel(&b, 2) == 0 && proto_encode_error(&b, 3, 2, "busy") == 0;
	while (ok && off < b.len) {
		n = proto_frame_check(b.data + off, b.len - off, &h);
		ok = n > 0 && h.job_id == (uint64_t)(count < 1 ? 1 : count < 3 ? 2 : 3);
		off += (size_t)n;
		count++;
	}
	CHECK(ok && count == 4 && off == b.len, "frame_check walks four frames in one buffer");
}

/* Every proper prefix of a valid frame needs more bytes; the whole frame is complete. */
static void check_prefixes(const char *what, const struct proto_buf *b)
{
	struct proto_hdr h;
	bool ok = true;

	for (size_t i = 0; i < b->len && ok; i++) {
		uint8_t *p = dup_exact(b->data, i);

		/* From a whole header on, the header is handed out: a reader sizes its wait
		 * for the payload on it (the gateway's read watermark). */
		memset(&h, 0xa5, sizeof(h));
		ok = proto_frame_check(p, i, &h) == 0 &&
		     (i < PROTO_HDR_SIZE || (h.magic == PROTO_MAGIC &&
					     h.length == b->len - PROTO_HDR_SIZE));
		free(p);
	}
	ok = ok && proto_frame_check(b->data, b->len, &h) == (long)b->len;
	CHECK(ok, "truncated %s: frame_check is 0 for all %zu proper prefixes, header filled",
	      what, b->len);
}

static void test_truncated(void)
{
	struct proto_submit s = {.script = "def main():\n\treturn 1\n", .script_len = 22};
	struct proto_result r = {.verdict = PROTO_V_ERROR,
				 .message = "Script execution error: boom",
				 .message_len = 28,
				 .out = "hello\n",
				 .out_len = 6,
				 .err = "Traceback",
				 .err_len = 9};
	struct proto_pong pg = {.ready = 0, .reason = "self-test failed", .reason_len = 16};
	_cleanup_buf_ struct proto_buf b = {0};

	proto_encode_submit(&b, 1, &s);
	check_prefixes("SUBMIT", &b);
	proto_buf_reset(&b);
	proto_encode_ping(&b, 1);
	check_prefixes("PING", &b);
	proto_buf_reset(&b);
	proto_encode_result(&b, 1, &r);
	check_prefixes("RESULT", &b);
	proto_buf_reset(&b);
	proto_encode_error(&b, 1, PROTO_E_BUSY, "queue full");
	check_prefixes("ERROR", &b);
	proto_buf_reset(&b);
	proto_encode_pong(&b, 1, &pg);
	check_prefixes("PONG", &b);
}

static int hdr_check(uint32_t magic, uint16_t version, uint16_t type, uint32_t length,
		     uint32_t flags)
{
	uint8_t raw[PROTO_HDR_SIZE];
	_cleanup_free_ uint8_t *p = NULL;
	struct proto_hdr h;
	long n;
	int r;

	mkhdr(raw, magic, version, type, length, flags, 1);
	p = dup_exact(raw, sizeof(raw));
	r = proto_hdr_decode(p, &h);
	/* frame_check must report the same verdict from the header alone, payload absent. */
	n = proto_frame_check(p, sizeof(raw), &h);
	if (r < 0 && n != r)
		return -1000;
	if (r == 0 && length > 0 && n != 0)
		return -1001;
	return r;
}

static void test_header(void)
{
	const uint32_t M = PROTO_MAGIC;
	const uint16_t V = PROTO_VERSION;
	uint8_t raw[PROTO_HDR_SIZE];
	struct proto_hdr h = {0}, sentinel;

	CHECK(hdr_check(M, V, PROTO_SUBMIT, 16, 0) == 0, "header: valid SUBMIT accepted");
	CHECK(hdr_check(M, V, PROTO_SUBMIT, (uint32_t)proto_payload_max(PROTO_SUBMIT), 0) == 0,
	      "header: length exactly at the SUBMIT cap accepted");
	CHECK(hdr_check(M, V, PROTO_SUBMIT, (uint32_t)proto_payload_max(PROTO_SUBMIT) + 1, 0) ==
		  -EMSGSIZE,
	      "header: SUBMIT length over cap -> -EMSGSIZE from the header alone");
	CHECK(hdr_check(M, V, PROTO_RESULT, UINT32_MAX, 0) == -EMSGSIZE,
	      "header: RESULT length 0xffffffff -> -EMSGSIZE");
	CHECK(hdr_check(M, V, PROTO_ERROR, (uint32_t)proto_payload_max(PROTO_ERROR) + 1, 0) ==
		  -EMSGSIZE,
	      "header: ERROR length over cap -> -EMSGSIZE");
	CHECK(hdr_check(M, V, PROTO_PONG, (uint32_t)proto_payload_max(PROTO_PONG) + 1, 0) ==
		  -EMSGSIZE,
	      "header: PONG length over cap -> -EMSGSIZE");
	CHECK(hdr_check(M, V, PROTO_PING, 1, 0) == -EMSGSIZE, "header: PING with a payload");
	CHECK(hdr_check(M, V, PROTO_CANCEL, 4, 0) == -EMSGSIZE, "header: CANCEL with a payload");
	CHECK(hdr_check(0x50584544, V, PROTO_PING, 0, 0) == -EBADMSG, "header: bad magic");
	CHECK(hdr_check(0x43455850, V, PROTO_PING, 0, 0) == -EBADMSG,
	      "header: little-endian magic is bad magic");
	CHECK(hdr_check(M, 0, PROTO_PING, 0, 0) == -EPROTONOSUPPORT, "header: version 0");
	CHECK(hdr_check(M, 2, PROTO_PING, 0, 0) == -EPROTONOSUPPORT, "header: version 2");
	CHECK(hdr_check(M, 0x0100, PROTO_PING, 0, 0) == -EPROTONOSUPPORT,
	      "header: byte-swapped version");
	CHECK(hdr_check(M, V, 0, 0, 0) == -EPROTO && hdr_check(M, V, 4, 0, 0) == -EPROTO &&
		  hdr_check(M, V, 15, 0, 0) == -EPROTO && hdr_check(M, V, 19, 0, 0) == -EPROTO &&
		  hdr_check(M, V, 0xffff, 0, 0) == -EPROTO,
	      "header: unknown types -> -EPROTO");
	CHECK(hdr_check(M, V, PROTO_PING, 0, 1) == -EPROTO &&
		  hdr_check(M, V, PROTO_SUBMIT, 16, 0x80000000) == -EPROTO,
	      "header: non-zero flags -> -EPROTO");
	/* The order of the checks is part of the contract. */
	CHECK(hdr_check(0, 9, 99, UINT32_MAX, 1) == -EBADMSG, "header order: magic first");
	CHECK(hdr_check(M, 9, 99, UINT32_MAX, 1) == -EPROTONOSUPPORT,
	      "header order: version before type");
	CHECK(hdr_check(M, V, 99, UINT32_MAX, 0) == -EPROTO, "header order: type before length");
	CHECK(hdr_check(M, V, PROTO_PING, UINT32_MAX, 1) == -EPROTO,
	      "header order: flags before length");

	mkhdr(raw, M, V, PROTO_PING, 0, 0, 0xfedcba9876543210ull);
	CHECK(proto_hdr_decode(raw, &h) == 0 && h.magic == M && h.version == V &&
		  h.type == PROTO_PING && h.length == 0 && h.flags == 0 &&
		  h.job_id == 0xfedcba9876543210ull,
	      "header: fields decoded big-endian");
	memset(&sentinel, 0xa5, sizeof(sentinel));
	h = sentinel;
	mkhdr(raw, M, 7, PROTO_PING, 0, 0, 1);
	CHECK(proto_hdr_decode(raw, &h) < 0 && !memcmp(&h, &sentinel, sizeof(h)),
	      "header: ret_hdr untouched on error");
	CHECK(proto_frame_check(raw, PROTO_HDR_SIZE - 1, &h) == 0,
	      "frame_check: 23 bytes of a bad header still need more bytes");
}

/* The heap copy the last DECODE() ran on: kept until the next one, because the decoded struct
 * points into it. */
static uint8_t *decode_copy;

/* Runs a decoder on a heap copy of exactly `len` bytes and checks that the output struct is
 * untouched when it fails. */
#define DECODE(fn, type, buf, len, ret)                                                            \
	({                                                                                         \
		type _d, _s;                                                                       \
		int _r;                                                                            \
		free(decode_copy);                                                                 \
		decode_copy = dup_exact((buf), (len));                                             \
		memset(&_d, 0x5a, sizeof(_d));                                                     \
		_s = _d;                                                                           \
		_r = fn(decode_copy, (len), &_d);                                                  \
		if (_r < 0 && memcmp(&_d, &_s, sizeof(_d)))                                        \
			_r = -1000; /* wrote ret on failure */                                     \
		*(ret) = _d;                                                                       \
		_r;                                                                                \
	})

static void test_bad_payloads(void)
{
	uint8_t p[256], *q;
	struct proto_submit s;
	struct proto_result r;
	struct proto_error e;
	struct proto_pong pg;
	bool ok;

	/* SUBMIT: 16 fixed bytes, script "ab". */
	q = be32(be32(be32(p, 1), 2), 0);
	q = be32(q, 2);
	*q++ = 'a';
	*q++ = 'b';
	CHECK(DECODE(proto_decode_submit, struct proto_submit, p, 18, &s) == 0,
	      "SUBMIT payload baseline decodes");
	CHECK(DECODE(proto_decode_submit, struct proto_submit, p, 19, &s) == -EBADMSG,
	      "SUBMIT payload with a trailing byte -> -EBADMSG");
	ok = true;
	for (size_t i = 0; i < 18; i++)
		ok = ok && DECODE(proto_decode_submit, struct proto_submit, p, i, &s) == -EBADMSG;
	CHECK(ok, "SUBMIT: every short payload -> -EBADMSG (and ret untouched)");
	be32(p + 12, 3);
	CHECK(DECODE(proto_decode_submit, struct proto_submit, p, 18, &s) == -EBADMSG,
	      "SUBMIT script_len pointing one past the end -> -EBADMSG");
	be32(p + 12, UINT32_MAX);
	CHECK(DECODE(proto_decode_submit, struct proto_submit, p, 18, &s) == -EBADMSG,
	      "SUBMIT script_len 0xffffffff -> -EBADMSG");
	be32(p + 12, 1);
	CHECK(DECODE(proto_decode_submit, struct proto_submit, p, 18, &s) == -EBADMSG,
	      "SUBMIT script_len short of the end (trailing garbage) -> -EBADMSG");
	be32(p + 12, 2);
	be32(p + 8, 1);
	CHECK(DECODE(proto_decode_submit, struct proto_submit, p, 18, &s) == -EBADMSG,
	      "SUBMIT non-zero reserved flags -> -EBADMSG");

	/* RESULT: 24 fixed bytes, then message "m", result "", stdout "", stderr "". */
	memset(p, 0, sizeof(p));
	q = be16(be16(p, PROTO_V_ERROR), 0);
	q = be32(be32(be32(q, 1), 2), 3);
	q = be64(q, 4);
	q = be32(q, 1);
	*q++ = 'm';
	q = be32(be32(be32(q, 0), 0), 0);
	CHECK(q - p == 41 && DECODE(proto_decode_result, struct proto_result, p, 41, &r) == 0 &&
		  r.verdict == PROTO_V_ERROR && r.peak_memory == 4 &&
		  mem_eq(r.message, r.message_len, "m", 1),
	      "RESULT payload baseline decodes");
	CHECK(DECODE(proto_decode_result, struct proto_result, p, 42, &r) == -EBADMSG,
	      "RESULT payload with a trailing byte -> -EBADMSG");
	ok = true;
	for (size_t i = 0; i < 41; i++)
		ok = ok && DECODE(proto_decode_result, struct proto_result, p, i, &r) == -EBADMSG;
	CHECK(ok, "RESULT: every short payload -> -EBADMSG");
	be16(p, PROTO_V__MAX);
	CHECK(DECODE(proto_decode_result, struct proto_result, p, 41, &r) == -EBADMSG,
	      "RESULT verdict == PROTO_V__MAX -> -EBADMSG");
	be16(p, 0xffff);
	CHECK(DECODE(proto_decode_result, struct proto_result, p, 41, &r) == -EBADMSG,
	      "RESULT verdict 0xffff -> -EBADMSG");
	be16(p, PROTO_V_OK);
	be16(p + 2, 0x4);
	CHECK(DECODE(proto_decode_result, struct proto_result, p, 41, &r) == -EBADMSG,
	      "RESULT unknown flag bit -> -EBADMSG");
	be16(p + 2, 0);
	be32(p + 24, 2);
	CHECK(DECODE(proto_decode_result, struct proto_result, p, 41, &r) == -EBADMSG,
	      "RESULT message_len overlapping the next length -> -EBADMSG");
	be32(p + 24, 1);
	be32(p + 37, 1);
	CHECK(DECODE(proto_decode_result, struct proto_result, p, 41, &r) == -EBADMSG,
	      "RESULT stderr_len pointing past the end -> -EBADMSG");
	be32(p + 37, UINT32_MAX);
	CHECK(DECODE(proto_decode_result, struct proto_result, p, 41, &r) == -EBADMSG,
	      "RESULT stderr_len 0xffffffff -> -EBADMSG");

	/* A message one byte over its cap, with every byte present: the cap, not the length,
	 * must reject it. */
	{
		size_t n = 24 + 4 + PROTO_MESSAGE_MAX + 1 + 12;
		_cleanup_free_ uint8_t *big = xmalloc(n);

		memset(big, 0, n);
		be32(big + 24, PROTO_MESSAGE_MAX + 1);
		CHECK(DECODE(proto_decode_result, struct proto_result, big, n, &r) == -EBADMSG,
		      "RESULT message over PROTO_MESSAGE_MAX (bytes present) -> -EBADMSG");
		be32(big + 24, PROTO_MESSAGE_MAX);
		be32(big + 24 + 4 + PROTO_MESSAGE_MAX, 1);
		CHECK(DECODE(proto_decode_result, struct proto_result, big, n, &r) == 0 &&
			  r.message_len == PROTO_MESSAGE_MAX && r.result_len == 1,
		      "RESULT message exactly PROTO_MESSAGE_MAX decodes");
	}

	/* ERROR: code, reserved, "hi". */
	q = be16(be16(p, PROTO_E_BUSY), 0);
	q = be32(q, 2);
	*q++ = 'h';
	*q++ = 'i';
	CHECK(DECODE(proto_decode_error, struct proto_error, p, 10, &e) == 0 &&
		  e.code == PROTO_E_BUSY && mem_eq(e.message, e.message_len, "hi", 2),
	      "ERROR payload baseline decodes");
	CHECK(DECODE(proto_decode_error, struct proto_error, p, 11, &e) == -EBADMSG,
	      "ERROR payload with a trailing byte -> -EBADMSG");
	ok = true;
	for (size_t i = 0; i < 10; i++)
		ok = ok && DECODE(proto_decode_error, struct proto_error, p, i, &e) == -EBADMSG;
	CHECK(ok, "ERROR: every short payload -> -EBADMSG");
	be16(p + 2, 1);
	CHECK(DECODE(proto_decode_error, struct proto_error, p, 10, &e) == -EBADMSG,
	      "ERROR non-zero reserved field -> -EBADMSG");
	be16(p + 2, 0);
	be32(p + 4, 3);
	CHECK(DECODE(proto_decode_error, struct proto_error, p, 10, &e) == -EBADMSG,
	      "ERROR msg_len pointing past the end -> -EBADMSG");

	/* PONG: ready, cgroup_version, four counters, reason "". */
	memset(p, 0, sizeof(p));
	be16(p, 1);
	be16(p + 2, 2);
	CHECK(DECODE(proto_decode_pong, struct proto_pong, p, 24, &pg) == 0 && pg.ready == 1 &&
		  pg.cgroup_version == 2 && pg.reason_len == 0,
	      "PONG payload baseline decodes");
	CHECK(DECODE(proto_decode_pong, struct proto_pong, p, 25, &pg) == -EBADMSG,
	      "PONG payload with a trailing byte -> -EBADMSG");
	ok = true;
	for (size_t i = 0; i < 24; i++)
		ok = ok && DECODE(proto_decode_pong, struct proto_pong, p, i, &pg) == -EBADMSG;
	CHECK(ok, "PONG: every short payload -> -EBADMSG");
	be16(p, 2);
	CHECK(DECODE(proto_decode_pong, struct proto_pong, p, 24, &pg) == -EBADMSG,
	      "PONG ready == 2 -> -EBADMSG");
	be16(p, 0);
	be32(p + 20, 1);
	CHECK(DECODE(proto_decode_pong, struct proto_pong, p, 24, &pg) == -EBADMSG,
	      "PONG reason_len pointing past the end -> -EBADMSG");
}

/* xorshift64*: a fixed seed makes every failure reproducible. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dull;
}

/* A random valid frame of a random type, small enough to mutate quickly. */
static void random_frame(struct proto_buf *b)
{
	char blob[4][64];
	uint32_t len[4];

	for (int i = 0; i < 4; i++) {
		len[i] = (uint32_t)(rng() % sizeof(blob[i]));
		for (uint32_t j = 0; j < len[i]; j++)
			blob[i][j] = (char)rng();
	}
	blob[0][sizeof(blob[0]) - 1] = '\0'; /* for the ERROR encoder */
	switch (rng() % 6) {
	case 0: {
		struct proto_submit s = {.timeout_ms = (uint32_t)rng(),
					 .memory_mb = (uint32_t)rng(),
					 .script = blob[0],
					 .script_len = len[0]};
		proto_encode_submit(b, rng(), &s);
		break;
	}
	case 1:
		proto_encode_cancel(b, rng());
		break;
	case 2:
		proto_encode_ping(b, rng());
		break;
	case 3: {
		struct proto_result r = {.verdict = (uint16_t)(rng() % PROTO_V__MAX),
					 .flags = (uint16_t)(rng() % 4),
					 .wall_ms = (uint32_t)rng(),
					 .peak_memory = rng(),
					 .message = blob[0],
					 .message_len = len[0],
					 .result = blob[1],
					 .result_len = len[1],
					 .out = blob[2],
					 .out_len = len[2],
					 .err = blob[3],
					 .err_len = len[3]};
		proto_encode_result(b, rng(), &r);
		break;
	}
	case 4:
		proto_encode_error(b, rng(), (uint16_t)rng(), blob[0]);
		break;
	default: {
		struct proto_pong pg = {.ready = (uint16_t)(rng() % 2),
					.running = (uint32_t)rng(),
					.reason = blob[0],
					.reason_len = len[0]};
		proto_encode_pong(b, rng(), &pg);
		break;
	}
	}
}

/* Whatever a decoder accepts must re-encode to the same bytes: one meaning per byte string. */
static bool canonical(uint16_t type, const uint8_t *p, size_t len)
{
	_cleanup_buf_ struct proto_buf b = {0};
	struct proto_submit s;
	struct proto_result r;
	struct proto_pong pg;
	int rc;

	switch (type) {
	case PROTO_SUBMIT:
		if (proto_decode_submit(p, len, &s) < 0)
			return true;
		rc = proto_encode_submit(&b, 0, &s);
		break;
	case PROTO_RESULT:
		if (proto_decode_result(p, len, &r) < 0)
			return true;
		rc = proto_encode_result(&b, 0, &r);
		break;
	case PROTO_PONG:
		if (proto_decode_pong(p, len, &pg) < 0)
			return true;
		rc = proto_encode_pong(&b, 0, &pg);
		break;
	default:
		return true;
	}
	return rc == 0 && b.len == PROTO_HDR_SIZE + len &&
	       (len == 0 || !memcmp(b.data + PROTO_HDR_SIZE, p, len));
}

static void test_fuzz(void)
{
	_cleanup_buf_ struct proto_buf b = {0};
	unsigned frames = 0, decoded = 0, bad = 0;
	const int iterations = 100000;
	struct proto_submit s;
	struct proto_result r;
	struct proto_error e;
	struct proto_pong pg;
	struct proto_hdr h;
	uint8_t w[1024];

	for (int it = 0; it < iterations; it++) {
		size_t len;
		uint8_t *p;
		long n;

		proto_buf_reset(&b);
		random_frame(&b);
		if (b.len > sizeof(w) - 64) {
			CHECK(false, "fuzz: random frame too big for the work buffer");
			return;
		}
		memcpy(w, b.data, b.len);
		len = b.len;
		switch (rng() % 5) {
		case 0: /* pure noise */
			len = rng() % 200;
			for (size_t i = 0; i < len; i++)
				w[i] = (uint8_t)rng();
			break;
		case 1: /* a valid frame with a few bytes changed */
			for (int k = (int)(rng() % 4); k >= 0; k--)
				w[rng() % len] = (uint8_t)rng();
			break;
		case 2: /* a valid frame cut short */
			len -= (size_t)(rng() % (len + 1));
			break;
		case 3: /* a valid frame with junk behind it, sometimes counted in the length */
			for (int k = (int)(rng() % 64); k > 0; k--)
				w[len++] = (uint8_t)rng();
			if (rng() % 2)
				be32(w + 8, (uint32_t)(len - PROTO_HDR_SIZE));
			break;
		default: /* a valid header, random payload bytes */
			for (size_t i = PROTO_HDR_SIZE; i < len; i++)
				w[i] = (uint8_t)rng();
			break;
		}

		p = dup_exact(w, len);
		n = proto_frame_check(p, len, &h);
		if (n < 0)
			bad++;
		if (n > 0) {
			frames++;
			if (n < PROTO_HDR_SIZE || (size_t)n > len ||
			    (size_t)n != PROTO_HDR_SIZE + h.length) {
				free(p);
				CHECK(false, "fuzz: frame_check returned %ld for %zu bytes", n,
				      len);
				return;
			}
		}
		/* Every decoder on the whole buffer, and on the payload of a complete frame. */
		decoded += proto_decode_submit(p, len, &s) == 0;
		decoded += proto_decode_result(p, len, &r) == 0;
		decoded += proto_decode_error(p, len, &e) == 0;
		decoded += proto_decode_pong(p, len, &pg) == 0;
		if (n > 0) {
			const uint8_t *q = p + PROTO_HDR_SIZE;
			size_t ql = (size_t)n - PROTO_HDR_SIZE;

			decoded += proto_decode_submit(q, ql, &s) == 0;
			decoded += proto_decode_result(q, ql, &r) == 0;
			decoded += proto_decode_error(q, ql, &e) == 0;
			decoded += proto_decode_pong(q, ql, &pg) == 0;
			if (!canonical(h.type, q, ql)) {
				free(p);
				CHECK(false,
				      "fuzz: iteration %d: a decoded payload does not "
				      "re-encode to the same bytes",
				      it);
				return;
			}
		}
		free(p);
	}
	CHECK(true,
	      "fuzz: %d random/mutated buffers through frame_check and every decoder "
	      "(%u complete frames, %u bad headers, %u decodes accepted, all canonical)",
	      iterations, frames, bad, decoded);
	CHECK(frames > 1000 && bad > 1000 && decoded > 1000,
	      "fuzz: the corpus reaches both the accept and the reject paths");
}

static void test_read_frame(void)
{
	struct proto_submit s = {.timeout_ms = 5, .script = "x\0y", .script_len = 3};
	_cleanup_buf_ struct proto_buf b = {0};
	_cleanup_free_ uint8_t *payload = NULL;
	struct proto_submit d;
	struct proto_hdr h;
	uint8_t raw[PROTO_HDR_SIZE + 8];
	char tail[16];
	int sv[2], pv[2], r;
	ssize_t n;

	/* Whole frame, then a header-only frame, then EOF at a frame boundary. */
	xsocketpair(sv);
	proto_encode_submit(&b, 77, &s);
	proto_encode_ping(&b, 78);
	CHECK(proto_write_all(sv[0], b.data, b.len) == 0, "write_all over a socketpair");
	r = proto_read_frame(sv[1], &h, &payload);
	CHECK(r == 0 && h.type == PROTO_SUBMIT && h.job_id == 77 &&
		  proto_decode_submit(payload, h.length, &d) == 0 &&
		  mem_eq(d.script, d.script_len, "x\0y", 3) && d.timeout_ms == 5,
	      "read_frame: a whole SUBMIT");
	free(payload);
	{
		static uint8_t marker;

		payload = &marker; /* must be overwritten with NULL */
		r = proto_read_frame(sv[1], &h, &payload);
		CHECK(r == 0 && h.type == PROTO_PING && h.job_id == 78 && payload == NULL,
		      "read_frame: PING gives a NULL payload");
		if (payload == &marker)
			payload = NULL;
	}
	shutdown(sv[0], SHUT_WR);
	CHECK(proto_read_frame(sv[1], &h, &payload) == -ECONNRESET,
	      "read_frame: EOF before any byte -> -ECONNRESET");
	close(sv[0]);
	close(sv[1]);

	/* EOF inside the header. */
	xsocketpair(sv);
	proto_write_all(sv[0], b.data, 10);
	shutdown(sv[0], SHUT_WR);
	CHECK(proto_read_frame(sv[1], &h, &payload) == -ECONNRESET,
	      "read_frame: EOF inside the header -> -ECONNRESET");
	close(sv[0]);
	close(sv[1]);

	/* EOF inside the payload. */
	xsocketpair(sv);
	proto_write_all(sv[0], b.data, PROTO_HDR_SIZE + 5);
	shutdown(sv[0], SHUT_WR);
	CHECK(proto_read_frame(sv[1], &h, &payload) == -ECONNRESET,
	      "read_frame: EOF inside the payload -> -ECONNRESET");
	close(sv[0]);
	close(sv[1]);

	/* An oversized length fails on the header: the bytes behind it stay unread. */
	xsocketpair(sv);
	mkhdr(raw, PROTO_MAGIC, PROTO_VERSION, PROTO_SUBMIT, 16 + PROTO_SCRIPT_MAX + 1, 0, 1);
	memcpy(raw + PROTO_HDR_SIZE, "PAYLOAD!", 8);
	proto_write_all(sv[0], raw, sizeof(raw));
	CHECK(proto_read_frame(sv[1], &h, &payload) == -EMSGSIZE,
	      "read_frame: oversized length -> -EMSGSIZE");
	n = recv(sv[1], tail, sizeof(tail), MSG_DONTWAIT);
	CHECK(n == 8 && !memcmp(tail, "PAYLOAD!", 8),
	      "read_frame: ... without reading (or waiting for) the payload");
	mkhdr(raw, 0x12345678, PROTO_VERSION, PROTO_PING, 0, 0, 1);
	proto_write_all(sv[0], raw, PROTO_HDR_SIZE);
	CHECK(proto_read_frame(sv[1], &h, &payload) == -EBADMSG, "read_frame: bad magic");
	close(sv[0]);
	close(sv[1]);

	/* write() fallback on a pipe (ENOTSOCK), and read_frame from a pipe. */
	if (pipe2(pv, O_CLOEXEC) < 0) {
		perror("pipe2");
		exit(99);
	}
	proto_buf_reset(&b);
	proto_encode_error(&b, 5, PROTO_E_SHUTDOWN, "bye");
	CHECK(proto_write_all(pv[1], b.data, b.len) == 0, "write_all falls back to write() on "
							  "a pipe");
	r = proto_read_frame(pv[0], &h, &payload);
	CHECK(r == 0 && h.type == PROTO_ERROR && h.job_id == 5 && h.length == 11,
	      "read_frame from a pipe");
	free(payload);
	payload = NULL;
	close(pv[0]);
	close(pv[1]);

	/* A peer that went away: -EPIPE, not a SIGPIPE that kills us. */
	signal(SIGPIPE, SIG_DFL);
	xsocketpair(sv);
	close(sv[1]);
	CHECK(proto_write_all(sv[0], b.data, b.len) == -EPIPE,
	      "write_all to a closed peer -> -EPIPE, no SIGPIPE");
	close(sv[0]);
}

/* A frame far larger than the socket buffer: partial writes and reads must add up. */
static void test_big_frame(void)
{
	_cleanup_buf_ struct proto_buf b = {0};
	_cleanup_free_ uint8_t *payload = NULL;
	_cleanup_free_ char *script = NULL;
	struct proto_submit s = {0}, d;
	struct proto_hdr h;
	int sv[2], status = -1, r;
	pid_t pid;

	script = xmalloc(PROTO_SCRIPT_MAX);
	for (uint32_t i = 0; i < PROTO_SCRIPT_MAX; i++)
		script[i] = (char)(i * 7);
	s.script = script;
	s.script_len = PROTO_SCRIPT_MAX;
	proto_encode_submit(&b, 99, &s);

	xsocketpair(sv);
	pid = fork();
	if (pid == 0) {
		close(sv[1]);
		_exit(proto_write_all(sv[0], b.data, b.len) == 0 ? 0 : 1);
	}
	close(sv[0]);
	r = proto_read_frame(sv[1], &h, &payload);
	waitpid(pid, &status, 0);
	close(sv[1]);
	CHECK(r == 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0 &&
		  proto_decode_submit(payload, h.length, &d) == 0 &&
		  mem_eq(d.script, d.script_len, script, PROTO_SCRIPT_MAX),
	      "1 MiB SUBMIT through a socketpair (partial writes and reads)");
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);

	test_payload_max();
	test_names();
	test_submit_bytes();
	test_result_bytes();
	test_error_pong_bytes();
	test_submit();
	test_cancel_ping();
	test_result();
	test_error();
	test_pong();
	test_stream();
	test_truncated();
	test_header();
	test_bad_payloads();
	free(decode_copy);
	test_fuzz();
	test_read_frame();
	test_big_frame();

	return check_summary();
}
