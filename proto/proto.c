/* proto.c - encoders and decoders for the sandboxd wire protocol (byte layout: PROTOCOL.md).
 *
 * The decoders are the daemon's whole attack surface towards its clients, so they are written
 * for hostile input: every length is a size_t compared against the bytes that remain before a
 * read, every field has a cap, and a payload must be consumed exactly (no trailing bytes), so
 * one byte string has one meaning.
 */
#include "proto.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* Fixed parts of the payloads (everything but the variable byte strings). */
#define SUBMIT_FIXED 16u /* timeout_ms, memory_mb, flags, script_len */
#define RESULT_FIXED 40u /* verdict, flags, wall, cpu, exit, peak (24) + four u32 lengths */
#define ERROR_FIXED 8u	 /* code, reserved, msg_len */
#define PONG_FIXED 24u	 /* ready, cgroup_version, four u32 counters, reason_len */

#define RESULT_FLAGS_KNOWN (PROTO_F_STDOUT_TRUNCATED | PROTO_F_STDERR_TRUNCATED)

void proto_buf_free(struct proto_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
}

static bool type_known(uint16_t type)
{
	switch (type) {
	case PROTO_SUBMIT:
	case PROTO_CANCEL:
	case PROTO_PING:
	case PROTO_RESULT:
	case PROTO_ERROR:
	case PROTO_PONG:
		return true;
	default:
		return false;
	}
}

size_t proto_payload_max(uint16_t type)
{
	switch (type) {
	case PROTO_SUBMIT:
		return SUBMIT_FIXED + PROTO_SCRIPT_MAX;
	case PROTO_RESULT:
		return (size_t)RESULT_FIXED + PROTO_MESSAGE_MAX + PROTO_RESULT_MAX +
		       PROTO_STDOUT_MAX + PROTO_STDERR_MAX;
	case PROTO_ERROR:
		return ERROR_FIXED + PROTO_MESSAGE_MAX;
	case PROTO_PONG:
		return PONG_FIXED + PROTO_MESSAGE_MAX;
	default:
		/* CANCEL and PING carry nothing; unknown types have no cap either (see type_known).
		 */
		return 0;
	}
}

/* Big-endian accessors; byte by byte, so alignment and host order never matter. */
static uint16_t get_u16(const uint8_t *p)
{
	return (uint16_t)((uint16_t)p[0] << 8 | p[1]);
}

static uint32_t get_u32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t get_u64(const uint8_t *p)
{
	return (uint64_t)get_u32(p) << 32 | get_u32(p + 4);
}

static uint8_t *put_u16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
	return p + 2;
}

static uint8_t *put_u32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
	return p + 4;
}

static uint8_t *put_u64(uint8_t *p, uint64_t v)
{
	put_u32(p, (uint32_t)(v >> 32));
	return put_u32(p + 4, (uint32_t)v);
}

static uint8_t *put_bytes(uint8_t *p, const void *src, uint32_t n)
{
	/* memcpy with a NULL source is undefined even for 0 bytes, and empty fields may be NULL. */
	if (n)
		memcpy(p, src, n);
	return p + n;
}

static uint8_t *put_blob(uint8_t *p, const void *src, uint32_t n)
{
	return put_bytes(put_u32(p, n), src, n);
}

int proto_hdr_decode(const uint8_t *buf, struct proto_hdr *ret_hdr)
{
	struct proto_hdr h = {
	    .magic = get_u32(buf),
	    .version = get_u16(buf + 4),
	    .type = get_u16(buf + 6),
	    .length = get_u32(buf + 8),
	    .flags = get_u32(buf + 12),
	    .job_id = get_u64(buf + 16),
	};

	/* This order is part of the contract (PROTOCOL.md): the first broken field decides. */
	if (h.magic != PROTO_MAGIC)
		return -EBADMSG;
	if (h.version != PROTO_VERSION)
		return -EPROTONOSUPPORT;
	if (!type_known(h.type) || h.flags != 0)
		return -EPROTO;
	if (h.length > proto_payload_max(h.type))
		return -EMSGSIZE;
	*ret_hdr = h;
	return 0;
}

long proto_frame_check(const uint8_t *buf, size_t avail, struct proto_hdr *ret_hdr)
{
	struct proto_hdr h;
	int r;

	if (avail < PROTO_HDR_SIZE)
		return 0;
	r = proto_hdr_decode(buf, &h);
	if (r < 0)
		return r;
	/* A valid header is handed out even while its payload is still on its way: readers
	 * size their wait (a read watermark) and check the type on it. */
	if (ret_hdr)
		*ret_hdr = h;
	/* length is at most the RESULT cap (about 25 MiB): no overflow in the sum. */
	if (avail - PROTO_HDR_SIZE < h.length)
		return 0;
	return (long)PROTO_HDR_SIZE + (long)h.length;
}

/* Reserves room for one frame with a `plen`-byte payload, writes its header, and returns where
 * the payload goes. The caller fills exactly `plen` bytes; nothing can fail after this. */
static int frame_begin(struct proto_buf *b, uint16_t type, uint64_t job_id, size_t plen,
		       uint8_t **ret_payload)
{
	size_t need, cap;
	uint8_t *p;

	if (plen > proto_payload_max(type))
		return -EMSGSIZE;
	if (b->len > SIZE_MAX - PROTO_HDR_SIZE - plen)
		return -ENOMEM;
	need = b->len + PROTO_HDR_SIZE + plen;
	if (need > b->cap) {
		/* Doubling keeps a stream of small frames cheap; 256 avoids tiny first steps. */
		cap = b->cap > SIZE_MAX / 2 ? SIZE_MAX : b->cap * 2;
		if (cap < need)
			cap = need;
		if (cap < 256)
			cap = 256;
		p = realloc(b->data, cap);
		if (!p)
			return -ENOMEM;
		b->data = p;
		b->cap = cap;
	}

	p = b->data + b->len;
	p = put_u32(p, PROTO_MAGIC);
	p = put_u16(p, PROTO_VERSION);
	p = put_u16(p, type);
	p = put_u32(p, (uint32_t)plen);
	p = put_u32(p, 0);
	p = put_u64(p, job_id);
	b->len = need;
	*ret_payload = p;
	return 0;
}

int proto_encode_submit(struct proto_buf *b, uint64_t job_id, const struct proto_submit *s)
{
	uint8_t *p;
	int r;

	if (s->script_len > PROTO_SCRIPT_MAX)
		return -EMSGSIZE;
	if (s->flags != 0) /* reserved: the daemon would reject the frame */
		return -EINVAL;
	r = frame_begin(b, PROTO_SUBMIT, job_id, SUBMIT_FIXED + (size_t)s->script_len, &p);
	if (r < 0)
		return r;
	p = put_u32(p, s->timeout_ms);
	p = put_u32(p, s->memory_mb);
	p = put_u32(p, s->flags);
	put_blob(p, s->script, s->script_len);
	return 0;
}

int proto_encode_cancel(struct proto_buf *b, uint64_t job_id)
{
	uint8_t *p;

	return frame_begin(b, PROTO_CANCEL, job_id, 0, &p);
}

int proto_encode_ping(struct proto_buf *b, uint64_t job_id)
{
	uint8_t *p;

	return frame_begin(b, PROTO_PING, job_id, 0, &p);
}

int proto_encode_result(struct proto_buf *b, uint64_t job_id, const struct proto_result *r)
{
	size_t plen;
	uint8_t *p;
	int ret;

	if (r->verdict >= PROTO_V__MAX || (r->flags & ~RESULT_FLAGS_KNOWN))
		return -EINVAL;
	if (r->message_len > PROTO_MESSAGE_MAX || r->result_len > PROTO_RESULT_MAX ||
	    r->out_len > PROTO_STDOUT_MAX || r->err_len > PROTO_STDERR_MAX)
		return -EMSGSIZE;
	plen = (size_t)RESULT_FIXED + r->message_len + r->result_len + r->out_len + r->err_len;
	ret = frame_begin(b, PROTO_RESULT, job_id, plen, &p);
	if (ret < 0)
		return ret;
	p = put_u16(p, r->verdict);
	p = put_u16(p, r->flags);
	p = put_u32(p, r->wall_ms);
	p = put_u32(p, r->cpu_ms);
	p = put_u32(p, r->exit_code);
	p = put_u64(p, r->peak_memory);
	p = put_blob(p, r->message, r->message_len);
	p = put_blob(p, r->result, r->result_len);
	p = put_blob(p, r->out, r->out_len);
	put_blob(p, r->err, r->err_len);
	return 0;
}

int proto_encode_error(struct proto_buf *b, uint64_t job_id, uint16_t code, const char *msg)
{
	size_t n = msg ? strnlen(msg, PROTO_MESSAGE_MAX + 1) : 0;
	uint8_t *p;
	int r;

	if (n > PROTO_MESSAGE_MAX) {
		/* Cut on a UTF-8 character boundary so clients that decode strictly still can. */
		n = PROTO_MESSAGE_MAX;
		while (n > 0 && ((uint8_t)msg[n] & 0xC0) == 0x80)
			n--;
	}
	r = frame_begin(b, PROTO_ERROR, job_id, ERROR_FIXED + n, &p);
	if (r < 0)
		return r;
	p = put_u16(p, code);
	p = put_u16(p, 0);
	put_blob(p, msg, (uint32_t)n);
	return 0;
}

int proto_encode_pong(struct proto_buf *b, uint64_t job_id, const struct proto_pong *pg)
{
	uint8_t *p;
	int r;

	if (pg->ready > 1)
		return -EINVAL;
	if (pg->reason_len > PROTO_MESSAGE_MAX)
		return -EMSGSIZE;
	r = frame_begin(b, PROTO_PONG, job_id, PONG_FIXED + (size_t)pg->reason_len, &p);
	if (r < 0)
		return r;
	p = put_u16(p, pg->ready);
	p = put_u16(p, pg->cgroup_version);
	p = put_u32(p, pg->running);
	p = put_u32(p, pg->queued);
	p = put_u32(p, pg->max_running);
	p = put_u32(p, pg->max_queued);
	put_blob(p, pg->reason, pg->reason_len);
	return 0;
}

/* A cursor over an untrusted payload. Each read first checks what remains, so `off` never
 * passes `len` and no sum can overflow. */
struct reader {
	const uint8_t *p;
	size_t len;
	size_t off;
};

static bool rd_u16(struct reader *rd, uint16_t *v)
{
	if (rd->len - rd->off < 2)
		return false;
	*v = get_u16(rd->p + rd->off);
	rd->off += 2;
	return true;
}

static bool rd_u32(struct reader *rd, uint32_t *v)
{
	if (rd->len - rd->off < 4)
		return false;
	*v = get_u32(rd->p + rd->off);
	rd->off += 4;
	return true;
}

static bool rd_u64(struct reader *rd, uint64_t *v)
{
	if (rd->len - rd->off < 8)
		return false;
	*v = get_u64(rd->p + rd->off);
	rd->off += 8;
	return true;
}

/* A u32 length and that many bytes, at most `max`. */
static bool rd_blob(struct reader *rd, uint32_t max, const char **ret_ptr, uint32_t *ret_len)
{
	uint32_t n;

	if (!rd_u32(rd, &n))
		return false;
	if (n > max || n > rd->len - rd->off)
		return false;
	*ret_ptr = (const char *)rd->p + rd->off;
	*ret_len = n;
	rd->off += n;
	return true;
}

static bool rd_done(const struct reader *rd)
{
	return rd->off == rd->len;
}

int proto_decode_submit(const uint8_t *p, size_t len, struct proto_submit *ret)
{
	struct reader rd = {.p = p, .len = len};
	struct proto_submit s;

	if (!rd_u32(&rd, &s.timeout_ms) || !rd_u32(&rd, &s.memory_mb) || !rd_u32(&rd, &s.flags) ||
	    !rd_blob(&rd, PROTO_SCRIPT_MAX, &s.script, &s.script_len) || !rd_done(&rd))
		return -EBADMSG;
	if (s.flags != 0) /* reserved: a future meaning must not be silently ignored */
		return -EBADMSG;
	*ret = s;
	return 0;
}

int proto_decode_result(const uint8_t *p, size_t len, struct proto_result *ret)
{
	struct reader rd = {.p = p, .len = len};
	struct proto_result r;

	if (!rd_u16(&rd, &r.verdict) || !rd_u16(&rd, &r.flags) || !rd_u32(&rd, &r.wall_ms) ||
	    !rd_u32(&rd, &r.cpu_ms) || !rd_u32(&rd, &r.exit_code) || !rd_u64(&rd, &r.peak_memory) ||
	    !rd_blob(&rd, PROTO_MESSAGE_MAX, &r.message, &r.message_len) ||
	    !rd_blob(&rd, PROTO_RESULT_MAX, &r.result, &r.result_len) ||
	    !rd_blob(&rd, PROTO_STDOUT_MAX, &r.out, &r.out_len) ||
	    !rd_blob(&rd, PROTO_STDERR_MAX, &r.err, &r.err_len) || !rd_done(&rd))
		return -EBADMSG;
	if (r.verdict >= PROTO_V__MAX || (r.flags & ~RESULT_FLAGS_KNOWN))
		return -EBADMSG;
	*ret = r;
	return 0;
}

int proto_decode_error(const uint8_t *p, size_t len, struct proto_error *ret)
{
	struct reader rd = {.p = p, .len = len};
	struct proto_error e;
	uint16_t reserved;

	if (!rd_u16(&rd, &e.code) || !rd_u16(&rd, &reserved) ||
	    !rd_blob(&rd, PROTO_MESSAGE_MAX, &e.message, &e.message_len) || !rd_done(&rd))
		return -EBADMSG;
	if (reserved != 0)
		return -EBADMSG;
	/* Unknown codes are accepted: a client maps them to a generic error, new codes don't
	 * need a version bump. */
	*ret = e;
	return 0;
}

int proto_decode_pong(const uint8_t *p, size_t len, struct proto_pong *ret)
{
	struct reader rd = {.p = p, .len = len};
	struct proto_pong pg;

	if (!rd_u16(&rd, &pg.ready) || !rd_u16(&rd, &pg.cgroup_version) ||
	    !rd_u32(&rd, &pg.running) || !rd_u32(&rd, &pg.queued) ||
	    !rd_u32(&rd, &pg.max_running) || !rd_u32(&rd, &pg.max_queued) ||
	    !rd_blob(&rd, PROTO_MESSAGE_MAX, &pg.reason, &pg.reason_len) || !rd_done(&rd))
		return -EBADMSG;
	if (pg.ready > 1)
		return -EBADMSG;
	*ret = pg;
	return 0;
}

const char *proto_type_name(uint16_t type)
{
	switch (type) {
	case PROTO_SUBMIT:
		return "submit";
	case PROTO_CANCEL:
		return "cancel";
	case PROTO_PING:
		return "ping";
	case PROTO_RESULT:
		return "result";
	case PROTO_ERROR:
		return "error";
	case PROTO_PONG:
		return "pong";
	default:
		return "unknown";
	}
}

const char *proto_verdict_name(uint16_t verdict)
{
	static const char *const names[] = {
	    [PROTO_V_OK] = "ok",
	    [PROTO_V_NO_MAIN] = "no_main",
	    [PROTO_V_ERROR] = "error",
	    [PROTO_V_TIMEOUT] = "timeout",
	    [PROTO_V_OOM] = "oom",
	    [PROTO_V_BAD_RESULT] = "bad_result",
	    [PROTO_V_KILLED] = "killed",
	    [PROTO_V_SANDBOX_ERROR] = "sandbox_error",
	    [PROTO_V_CANCELLED] = "cancelled",
	};
	/* A verdict added to proto.h without a name here must not compile. */
	_Static_assert(sizeof(names) / sizeof(names[0]) == PROTO_V__MAX, "verdict names");

	if (verdict >= PROTO_V__MAX)
		return "unknown";
	return names[verdict];
}
