/* proto.h - the pyexec wire protocol spoken on sandboxd's Unix socket.
 *
 * Byte layout: proto/PROTOCOL.md. Every frame is a 24-byte header (magic, version, type,
 * payload length, flags, job id; all big-endian) followed by `length` payload bytes. Each type
 * has its own payload cap, checked on the header before any payload memory is reserved.
 * Decoders are zero-copy: the pointers they return point into the caller's payload buffer and
 * the byte strings are NOT NUL-terminated (a script may contain NUL bytes).
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#define PROTO_MAGIC 0x50584543u /* "PXEC" */
#define PROTO_VERSION 1
#define PROTO_HDR_SIZE 24

/* Hard caps. A frame whose header announces more than its type's cap is a protocol error. */
#define PROTO_SCRIPT_MAX (1u << 20)  /* 1 MiB of script source */
#define PROTO_RESULT_MAX (16u << 20) /* result JSON */
#define PROTO_STDOUT_MAX (8u << 20)  /* captured stdout (the daemon's cap is lower by default) */
#define PROTO_STDERR_MAX (1u << 20)  /* captured stderr */
#define PROTO_MESSAGE_MAX 4096u      /* error texts and reasons */

enum proto_type {
	/* client -> daemon */
	PROTO_SUBMIT = 1, /* run a script; job_id chosen by the client, unique per connection */
	PROTO_CANCEL = 2, /* kill that job (queued or running); the daemon still answers it */
	PROTO_PING = 3,   /* ask for status; job_id is echoed in the PONG */
	/* daemon -> client */
	PROTO_RESULT = 16, /* the job's verdict, output and stats; exactly one per SUBMIT */
	PROTO_ERROR = 17,  /* a job refused (job_id != 0) or the connection closed (job_id == 0) */
	PROTO_PONG = 18,   /* status */
};

/* What happened to a job. The daemon also sends the exact error text for the API. */
enum proto_verdict {
	PROTO_V_OK = 0,            /* main() returned; result holds its JSON */
	PROTO_V_NO_MAIN = 1,       /* "Script must contain a main() function" */
	PROTO_V_ERROR = 2,         /* syntax error, exception, sys.exit: "Script execution error: ..." */
	PROTO_V_TIMEOUT = 3,       /* "Script execution timed out" */
	PROTO_V_OOM = 4,           /* memory limit exceeded */
	PROTO_V_BAD_RESULT = 5,    /* return value not JSON-serializable, too large or too deep */
	PROTO_V_KILLED = 6,        /* died by a signal, e.g. SIGSYS from seccomp, without a result */
	PROTO_V_SANDBOX_ERROR = 7, /* the jail could not be built; the script never ran */
	PROTO_V_CANCELLED = 8,     /* the client cancelled it */
	PROTO_V__MAX
};

/* Result flags. */
#define PROTO_F_STDOUT_TRUNCATED 0x1u
#define PROTO_F_STDERR_TRUNCATED 0x2u

/* ERROR codes. */
enum proto_error_code {
	PROTO_E_PROTOCOL = 1,  /* malformed frame: the daemon closes the connection after it */
	PROTO_E_BUSY = 2,      /* queue full: retry later */
	PROTO_E_INVALID = 3,   /* a well-formed request with bad values (limits, duplicate id) */
	PROTO_E_SHUTDOWN = 4,  /* the daemon is stopping */
	PROTO_E_NOT_READY = 5, /* the start-up self-test has not passed */
	PROTO_E_INTERNAL = 6,
};

struct proto_hdr {
	uint32_t magic;
	uint16_t version;
	uint16_t type;
	uint32_t length; /* payload bytes after the header */
	uint32_t flags;  /* reserved, 0 */
	uint64_t job_id;
};

struct proto_submit {
	uint32_t timeout_ms; /* 0: the daemon's default */
	uint32_t memory_mb;  /* 0: the daemon's default */
	uint32_t flags;      /* reserved, 0 */
	const char *script;
	uint32_t script_len;
};

struct proto_result {
	uint16_t verdict;
	uint16_t flags; /* PROTO_F_* */
	uint32_t wall_ms;
	uint32_t cpu_ms;
	uint64_t peak_memory; /* bytes */
	uint32_t exit_code;   /* runner's exit status or 128+signal; informational */
	const char *message;  /* API error text; empty when verdict is OK */
	uint32_t message_len;
	const char *result; /* JSON text of main()'s value; empty unless verdict is OK */
	uint32_t result_len;
	const char *out;
	uint32_t out_len;
	const char *err;
	uint32_t err_len;
};

struct proto_error {
	uint16_t code;
	const char *message;
	uint32_t message_len;
};

struct proto_pong {
	uint16_t ready;          /* 1 when the self-test passed and jobs are accepted */
	uint16_t cgroup_version; /* 1 or 2 */
	uint32_t running;
	uint32_t queued;
	uint32_t max_running;
	uint32_t max_queued;
	const char *reason; /* why not ready; empty when ready */
	uint32_t reason_len;
};

/* A growable output buffer for encoders. */
struct proto_buf {
	uint8_t *data;
	size_t len;
	size_t cap;
};

void proto_buf_free(struct proto_buf *b);
static inline void proto_buf_reset(struct proto_buf *b)
{
	b->len = 0;
}

/* Payload cap of a type, or 0 when the type is unknown. */
size_t proto_payload_max(uint16_t type);

/* Decodes and validates a header from at least PROTO_HDR_SIZE bytes.
 * Returns 0, -EBADMSG (magic), -EPROTONOSUPPORT (version), -EPROTO (unknown type or non-zero
 * flags) or -EMSGSIZE (length over the type's cap). */
int proto_hdr_decode(const uint8_t *buf, struct proto_hdr *ret_hdr);

/* For stream readers: looks at `avail` buffered bytes. Returns the whole frame size
 * (header + payload) when a complete frame is there, 0 when more bytes are needed, or a
 * proto_hdr_decode() error as soon as the header is bad (before the payload arrives).
 * *ret_hdr is filled whenever a whole, valid header is there, complete frame or not. */
long proto_frame_check(const uint8_t *buf, size_t avail, struct proto_hdr *ret_hdr);

/* Encoders append one whole frame to `b`. Return 0 or -ENOMEM / -EMSGSIZE. */
int proto_encode_submit(struct proto_buf *b, uint64_t job_id, const struct proto_submit *s);
int proto_encode_cancel(struct proto_buf *b, uint64_t job_id);
int proto_encode_ping(struct proto_buf *b, uint64_t job_id);
int proto_encode_result(struct proto_buf *b, uint64_t job_id, const struct proto_result *r);
int proto_encode_error(struct proto_buf *b, uint64_t job_id, uint16_t code, const char *msg);
int proto_encode_pong(struct proto_buf *b, uint64_t job_id, const struct proto_pong *p);

/* Decoders take the payload (after the header) and fill the struct with pointers into it.
 * Return 0 or -EBADMSG when the payload is short, has trailing bytes, or a field is over its
 * cap or out of range. */
int proto_decode_submit(const uint8_t *p, size_t len, struct proto_submit *ret);
int proto_decode_result(const uint8_t *p, size_t len, struct proto_result *ret);
int proto_decode_error(const uint8_t *p, size_t len, struct proto_error *ret);
int proto_decode_pong(const uint8_t *p, size_t len, struct proto_pong *ret);

const char *proto_type_name(uint16_t type);
const char *proto_verdict_name(uint16_t verdict); /* "ok", "no_main", ... ; "unknown" */

/* Blocking helpers for simple clients (the CLI, tests). */
int proto_write_all(int fd, const void *buf, size_t len);
/* Reads fd to EOF into a malloc'ed, NUL-terminated buffer of at most `cap` bytes. Returns 0,
 * -EFBIG when there is more, or -errno; on failure the bytes read are wiped before freeing. */
int proto_read_capped(int fd, size_t cap, char **ret_buf, size_t *ret_len);
/* Reads one frame; *ret_payload is malloc'ed (NULL for an empty payload) after the header passed
 * its checks. Returns 0, -ECONNRESET on EOF, a proto_hdr_decode() error, or -errno. */
int proto_read_frame(int fd, struct proto_hdr *ret_hdr, uint8_t **ret_payload);
