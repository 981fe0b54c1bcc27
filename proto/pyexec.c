/* pyexec.c - the command-line client for local tools: runs one script through sandboxd.
 *
 * `pyexec run FILE` prints exactly the JSON body the HTTP API returns for the same script, so
 * operators can reproduce an API answer on the host without the gateway. It speaks the same
 * protocol as the gateway (proto.h) and needs the same access to the socket.
 */
#include "proto.h"
#include "cleanup.h"
#include "jsonout.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#ifndef PYEXEC_VERSION
#define PYEXEC_VERSION "0.1.0"
#endif

#define DEFAULT_SOCKET "/run/pyexec/sandboxd.sock"
/* One job per invocation, so any id works; 1 keeps the daemon's logs easy to read. */
#define JOB_ID 1
/* The runner refuses results nested over 64 levels; the margin only guards our stack against a
 * daemon that misbehaves. */
#define RESULT_DEPTH_MAX 128

enum {
	EXIT_VERDICT_OK = 0, /* the script ran and main() returned a JSON value */
	EXIT_SCRIPT = 1,     /* any other verdict: the JSON on stdout says what went wrong */
	EXIT_USAGE = 2,	     /* bad arguments or an unreadable script: nothing was sent */
	EXIT_DAEMON = 3,     /* sandboxd unreachable, refused the job, or answered badly */
};

struct opts {
	const char *socket;
	uint32_t timeout_ms;
	uint32_t memory_mb;
	bool show_stderr;
};

/* jansson.h ships json_decrefp() (behind json_auto_t); spelled like our other cleanups. */
#define _cleanup_json_ __attribute__((cleanup(json_decrefp)))
#define _cleanup_proto_buf_ __attribute__((cleanup(proto_buf_free)))

static void usage(FILE *f)
{
	fprintf(
	    f,
	    "Usage: pyexec [OPTIONS] run FILE|-\n"
	    "       pyexec [OPTIONS] status\n"
	    "\n"
	    "Runs a Python script with a main() function in sandboxd's jail and prints the JSON\n"
	    "the HTTP API would return: {\"result\": ..., \"stdout\": ...} or\n"
	    "{\"error\": ..., \"stdout\": ...}. `status` prints the daemon's state as JSON.\n"
	    "\n"
	    "Options:\n"
	    "  --socket PATH     sandboxd's socket (default: $PYEXEC_SOCKET, else %s)\n"
	    "  --timeout-ms N    wall-clock limit for the job (0: the daemon's default)\n"
	    "  --memory-mb N     memory limit for the job (0: the daemon's default)\n"
	    "  --stderr          add the script's stderr to the output as \"stderr\"\n"
	    "  -h, --help        show this help\n"
	    "  --version         show the version\n"
	    "\n"
	    "Exit status: 0 the script returned a result (status: the daemon is ready);\n"
	    "1 the script failed, the error is in the JSON (status: not ready); 2 usage error or\n"
	    "unreadable script; 3 sandboxd could not be reached, refused the job, or answered\n"
	    "badly.\n",
	    DEFAULT_SOCKET);
}

static int parse_u32(const char *opt, const char *s, uint32_t *ret)
{
	unsigned long long v;
	char *end;

	/* strtoull accepts "-1" as a huge value; a limit must be a plain decimal number. */
	if (s[0] < '0' || s[0] > '9') {
		fprintf(stderr, "pyexec: %s: '%s' is not a number\n", opt, s);
		return -EINVAL;
	}
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || v > UINT32_MAX) {
		fprintf(stderr, "pyexec: %s: '%s' is not a number up to %" PRIu32 "\n", opt, s,
			UINT32_MAX);
		return -EINVAL;
	}
	*ret = (uint32_t)v;
	return 0;
}

/* Reads the whole script, refusing more than the protocol carries (the daemon would drop the
 * connection; better to say why here). */
static int read_script(const char *path, char **ret_buf, size_t *ret_len)
{
	_cleanup_close_ int ofd = -1;

	if (strcmp(path, "-") == 0)
		return proto_read_capped(STDIN_FILENO, PROTO_SCRIPT_MAX, ret_buf, ret_len);
	ofd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (ofd < 0)
		return -errno;
	return proto_read_capped(ofd, PROTO_SCRIPT_MAX, ret_buf, ret_len);
}

static int connect_daemon(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	_cleanup_close_ int fd = -1;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	while (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		if (errno != EINTR)
			return -errno;
	}
	return steal_fd(&fd);
}

static void report_connect_error(const char *path, int r)
{
	const char *hint = "";

	switch (-r) {
	case ENOENT:
	case ECONNREFUSED: /* a stale socket file left by a daemon that died */
		hint = " (is sandboxd running?)";
		break;
	case EACCES:
	case EPERM:
		hint = " (only root and the pyexec group may use it)";
		break;
	}
	fprintf(stderr, "pyexec: cannot connect to %s: %s%s\n", path, strerror(-r), hint);
}

static int set_new(json_t *obj, const char *key, json_t *val)
{
	/* json_object_set_new() steals val even on failure, and a NULL val is an error there. */
	return json_object_set_new(obj, key, val) < 0 ? -ENOMEM : 0;
}

static int print_json(json_t *obj)
{
	_cleanup_free_ char *text = NULL;

	/* The gateway's writer, so this prints the same bytes as the HTTP body: Python's
	 * json.dumps look, UTF-8 kept, floats as their shortest repr (0.1, 3.0). */
	text = jo_dumps(obj, NULL);
	if (!text) {
		fprintf(stderr, "pyexec: cannot encode the output JSON\n");
		return EXIT_DAEMON;
	}
	if (puts(text) == EOF || fflush(stdout) == EOF) {
		fprintf(stderr, "pyexec: writing the output: %s\n", strerror(errno));
		return EXIT_DAEMON;
	}
	return 0;
}

static const char *error_code_name(uint16_t code)
{
	switch (code) {
	case PROTO_E_PROTOCOL:
		return "protocol error";
	case PROTO_E_BUSY:
		return "busy";
	case PROTO_E_INVALID:
		return "invalid request";
	case PROTO_E_SHUTDOWN:
		return "shutting down";
	case PROTO_E_NOT_READY:
		return "not ready";
	case PROTO_E_INTERNAL:
		return "internal error";
	default:
		return "error";
	}
}

/* Sends one request and reads its answer: `want_type` for JOB_ID, or an ERROR for JOB_ID or for
 * the connection. Returns 0 with the answer, or an exit code after printing why. */
static int exchange(const char *path, const struct proto_buf *req, uint16_t want_type,
		    struct proto_hdr *ret_hdr, uint8_t **ret_payload)
{
	_cleanup_free_ uint8_t *payload = NULL;
	_cleanup_close_ int fd = connect_daemon(path);
	struct proto_hdr h;
	struct proto_error e;
	int wr, r;

	if (fd < 0) {
		report_connect_error(path, fd);
		return EXIT_DAEMON;
	}
	wr = proto_write_all(fd, req->data, req->len);
	/* Even if the write failed, the daemon may have said why before it closed (an ERROR for
	 * a refused request): read before reporting the write error. */
	r = proto_read_frame(fd, &h, &payload);
	if (r < 0) {
		if (wr < 0)
			fprintf(stderr, "pyexec: sending to %s: %s\n", path, strerror(-wr));
		else if (r == -ECONNRESET)
			fprintf(stderr,
				"pyexec: %s closed the connection without answering (only root and "
				"the gateway user may submit jobs)\n",
				path);
		else if (r == -EBADMSG || r == -EPROTONOSUPPORT || r == -EPROTO || r == -EMSGSIZE)
			fprintf(stderr, "pyexec: malformed frame from %s: %s\n", path,
				strerror(-r));
		else
			fprintf(stderr, "pyexec: reading from %s: %s\n", path, strerror(-r));
		return EXIT_DAEMON;
	}
	if (h.type == PROTO_ERROR && (h.job_id == JOB_ID || h.job_id == 0)) {
		if (proto_decode_error(payload, h.length, &e) < 0) {
			fprintf(stderr, "pyexec: malformed ERROR from sandboxd\n");
			return EXIT_DAEMON;
		}
		fprintf(stderr, "pyexec: sandboxd %s: %s: %.*s\n",
			h.job_id ? "refused the job" : "closed the connection",
			error_code_name(e.code), (int)e.message_len, e.message);
		return EXIT_DAEMON;
	}
	if (h.type != want_type || h.job_id != JOB_ID) {
		/* We sent one request; anything else means we and the daemon disagree. */
		fprintf(stderr, "pyexec: unexpected %s frame for job %" PRIu64 " from sandboxd\n",
			proto_type_name(h.type), h.job_id);
		return EXIT_DAEMON;
	}
	*ret_hdr = h;
	*ret_payload = steal_pointer(&payload);
	return 0;
}

static int cmd_run(const struct opts *o, const char *file)
{
	_cleanup_proto_buf_ struct proto_buf req = {0};
	_cleanup_free_ uint8_t *payload = NULL;
	_cleanup_free_ char *script = NULL;
	_cleanup_json_ json_t *obj = NULL;
	const char *name = strcmp(file, "-") ? file : "stdin";
	struct proto_submit s;
	struct proto_result res;
	struct proto_hdr h;
	json_error_t jerr;
	json_t *val;
	size_t len = 0;
	int r;

	r = read_script(file, &script, &len);
	if (r == -EFBIG) {
		fprintf(stderr,
			"pyexec: %s: the script is larger than %u bytes (1 MiB), the limit\n", name,
			PROTO_SCRIPT_MAX);
		return EXIT_USAGE;
	}
	if (r < 0) {
		fprintf(stderr, "pyexec: %s: %s\n", name, strerror(-r));
		return EXIT_USAGE;
	}

	s = (struct proto_submit){
	    .timeout_ms = o->timeout_ms,
	    .memory_mb = o->memory_mb,
	    .script = script,
	    .script_len = (uint32_t)len,
	};
	r = proto_encode_submit(&req, JOB_ID, &s);
	if (r < 0) {
		fprintf(stderr, "pyexec: encoding the request: %s\n", strerror(-r));
		return EXIT_USAGE;
	}

	r = exchange(o->socket, &req, PROTO_RESULT, &h, &payload);
	if (r != 0)
		return r;
	if (proto_decode_result(payload, h.length, &res) < 0) {
		fprintf(stderr, "pyexec: malformed RESULT from sandboxd\n");
		return EXIT_DAEMON;
	}

	obj = json_object();
	if (!obj)
		goto nomem;
	if (res.verdict == PROTO_V_OK) {
		/* Parse and re-encode rather than splice: what we print is JSON by construction.
		 * ALLOW_NUL: a Python string may hold U+0000. */
		if (jo_too_deep(res.result, res.result_len, RESULT_DEPTH_MAX)) {
			fprintf(stderr, "pyexec: sandboxd sent a result nested over %d levels\n",
				RESULT_DEPTH_MAX);
			return EXIT_DAEMON;
		}
		val =
		    json_loadb(res.result, res.result_len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
		if (!val) {
			fprintf(stderr, "pyexec: sandboxd sent a result that is not JSON: %s\n",
				jerr.text);
			return EXIT_DAEMON;
		}
		if (set_new(obj, "result", val) < 0)
			goto nomem;
	} else if (res.message_len > 0) {
		if (set_new(obj, "error", jo_string_lossy(res.message, res.message_len)) < 0)
			goto nomem;
	} else {
		/* The daemon always sends the text; never print an error without one. */
		if (set_new(obj, "error", json_string(proto_verdict_name(res.verdict))) < 0)
			goto nomem;
	}
	if (set_new(obj, "stdout", jo_string_lossy(res.out, res.out_len)) < 0)
		goto nomem;
	if (o->show_stderr && set_new(obj, "stderr", jo_string_lossy(res.err, res.err_len)) < 0)
		goto nomem;

	/* Truncation is not part of the API body; say it where a human will see it. */
	if (res.flags & PROTO_F_STDOUT_TRUNCATED)
		fprintf(stderr, "pyexec: note: stdout was truncated by sandboxd\n");
	if (o->show_stderr && (res.flags & PROTO_F_STDERR_TRUNCATED))
		fprintf(stderr, "pyexec: note: stderr was truncated by sandboxd\n");

	r = print_json(obj);
	if (r != 0)
		return r;
	return res.verdict == PROTO_V_OK ? EXIT_VERDICT_OK : EXIT_SCRIPT;

nomem:
	fprintf(stderr, "pyexec: %s\n", strerror(ENOMEM));
	return EXIT_DAEMON;
}

static int cmd_status(const struct opts *o)
{
	_cleanup_proto_buf_ struct proto_buf req = {0};
	_cleanup_free_ uint8_t *payload = NULL;
	_cleanup_json_ json_t *obj = NULL;
	struct proto_pong pg;
	struct proto_hdr h;
	int r;

	r = proto_encode_ping(&req, JOB_ID);
	if (r < 0) {
		fprintf(stderr, "pyexec: encoding the request: %s\n", strerror(-r));
		return EXIT_USAGE;
	}
	r = exchange(o->socket, &req, PROTO_PONG, &h, &payload);
	if (r != 0)
		return r;
	if (proto_decode_pong(payload, h.length, &pg) < 0) {
		fprintf(stderr, "pyexec: malformed PONG from sandboxd\n");
		return EXIT_DAEMON;
	}

	obj = json_object();
	if (!obj || set_new(obj, "ready", json_boolean(pg.ready)) < 0 ||
	    set_new(obj, "cgroup_version", json_integer(pg.cgroup_version)) < 0 ||
	    set_new(obj, "running", json_integer(pg.running)) < 0 ||
	    set_new(obj, "queued", json_integer(pg.queued)) < 0 ||
	    set_new(obj, "max_running", json_integer(pg.max_running)) < 0 ||
	    set_new(obj, "max_queued", json_integer(pg.max_queued)) < 0 ||
	    set_new(obj, "reason", jo_string_lossy(pg.reason, pg.reason_len)) < 0) {
		fprintf(stderr, "pyexec: %s\n", strerror(ENOMEM));
		return EXIT_DAEMON;
	}
	r = print_json(obj);
	if (r != 0)
		return r;
	return pg.ready ? EXIT_VERDICT_OK : EXIT_SCRIPT;
}

int main(int argc, char **argv)
{
	enum { OPT_SOCKET = 256, OPT_TIMEOUT, OPT_MEMORY, OPT_STDERR, OPT_VERSION };
	static const struct option longopts[] = {
	    {"socket", required_argument, NULL, OPT_SOCKET},
	    {"timeout-ms", required_argument, NULL, OPT_TIMEOUT},
	    {"memory-mb", required_argument, NULL, OPT_MEMORY},
	    {"stderr", no_argument, NULL, OPT_STDERR},
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, OPT_VERSION},
	    {0},
	};
	struct opts o = {0};
	const char *env, *cmd;
	int c;

	env = getenv("PYEXEC_SOCKET");
	o.socket = env && *env ? env : DEFAULT_SOCKET;

	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case OPT_SOCKET:
			if (!*optarg) {
				fprintf(stderr, "pyexec: --socket: empty path\n");
				return EXIT_USAGE;
			}
			o.socket = optarg;
			break;
		case OPT_TIMEOUT:
			if (parse_u32("--timeout-ms", optarg, &o.timeout_ms) < 0)
				return EXIT_USAGE;
			break;
		case OPT_MEMORY:
			if (parse_u32("--memory-mb", optarg, &o.memory_mb) < 0)
				return EXIT_USAGE;
			break;
		case OPT_STDERR:
			o.show_stderr = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case OPT_VERSION:
			printf("pyexec %s (protocol %d)\n", PYEXEC_VERSION, PROTO_VERSION);
			return 0;
		default:
			fprintf(stderr, "Try 'pyexec --help'.\n");
			return EXIT_USAGE;
		}
	}

	if (optind >= argc) {
		fprintf(stderr, "pyexec: missing command (run or status)\n");
		fprintf(stderr, "Try 'pyexec --help'.\n");
		return EXIT_USAGE;
	}
	cmd = argv[optind++];
	if (strcmp(cmd, "run") == 0) {
		if (argc - optind != 1) {
			fprintf(stderr, "pyexec: run takes one FILE (or - for stdin)\n");
			fprintf(stderr, "Try 'pyexec --help'.\n");
			return EXIT_USAGE;
		}
		return cmd_run(&o, argv[optind]);
	}
	if (strcmp(cmd, "status") == 0) {
		if (argc - optind != 0) {
			fprintf(stderr, "pyexec: status takes no arguments\n");
			fprintf(stderr, "Try 'pyexec --help'.\n");
			return EXIT_USAGE;
		}
		return cmd_status(&o);
	}
	fprintf(stderr, "pyexec: unknown command '%s' (run or status)\n", cmd);
	fprintf(stderr, "Try 'pyexec --help'.\n");
	return EXIT_USAGE;
}
