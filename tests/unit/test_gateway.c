/* test_gateway.c - unit tests for gatewayd's pure modules: request validation (request.c), the
 * verdict-to-reply mapping (reply.c), API keys (auth.c) and the option table (config.c). The
 * integration tests in tests/gateway run the same code behind real sockets. */
#include "check.h"
#include "auth.h"
#include "cleanup.h"
#include "config.h"
#include "jsonout.h"
#include "reply.h"
#include "request.h"
#include "wire.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <unistd.h>

static void test_content_type(void)
{
	static const struct {
		const char *ct;
		bool ok;
	} cases[] = {
	    {"application/json", true},
	    {"application/json; charset=utf-8", true},
	    {"APPLICATION/JSON;charset=utf-8", true},
	    {"  application/json  ", true},
	    {"application/json ;q=1", true},
	    {"application/problem+json", true},
	    {"application/+json", false},
	    {"application/jsonp", false},
	    {"application/json x", false},
	    {"text/json", false},
	    {"text/plain", false},
	    {"", false},
	    {NULL, false},
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
		CHECK(req_is_json_type(cases[i].ct) == cases[i].ok, "Content-Type '%s' -> %s",
		      cases[i].ct ? cases[i].ct : "(none)", cases[i].ok ? "JSON" : "not JSON");
}

static int parse(const char *body, size_t len, struct exec_params *p, const char **err)
{
	static const struct exec_limits lim = {.timeout_ms_max = 30000, .memory_mb_max = 512};
	static char msg[160];

	return req_parse_execute("application/json", body, len, &lim, p, err, msg, sizeof(msg));
}

static void test_parse_execute(void)
{
	static const struct {
		const char *body;
		int status;
		const char *error;
	} cases[] = {
	    {"{\"script\": \"x\"}", 0, NULL},
	    {"", 400, "Request must be JSON"},
	    {"[]", 400, "Request must be JSON"},
	    {"\"s\"", 400, "Request must be JSON"},
	    {"{\"script\": \"x\"", 400, "Request must be JSON"},
	    {"{}", 400, "Missing 'script' field"},
	    {"{\"script\": null}", 400, "'script' must be a string"},
	    {"{\"script\": 5}", 400, "'script' must be a string"},
	    {"{\"script\": \"x\", \"timeout_ms\": 99}", 400,
	     "'timeout_ms' must be an integer between 100 and 30000"},
	    {"{\"script\": \"x\", \"timeout_ms\": 30001}", 400,
	     "'timeout_ms' must be an integer between 100 and 30000"},
	    {"{\"script\": \"x\", \"timeout_ms\": false}", 400,
	     "'timeout_ms' must be an integer between 100 and 30000"},
	    {"{\"script\": \"x\", \"memory_mb\": 31}", 400,
	     "'memory_mb' must be an integer between 32 and 512"},
	    {"{\"script\": \"x\", \"memory_mb\": 64.0}", 400,
	     "'memory_mb' must be an integer between 32 and 512"},
	    {"{\"script\": \"x\", \"stderr\": 1}", 400, "'stderr' must be true or false"},
	    {"{\"script\": \"x\", \"timeout_ms\": 99999999999999999999999}", 400,
	     "Request JSON has a number out of range"},
	};
	struct exec_params p;
	const char *err, *body;
	int st;

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		err = NULL;
		st = parse(cases[i].body, strlen(cases[i].body), &p, &err);
		CHECK(st == cases[i].status &&
			  (cases[i].error ? err && strcmp(err, cases[i].error) == 0 : true),
		      "%s -> %d %s", cases[i].body, st, err ? err : "");
		if (st == 0)
			exec_params_free(&p);
	}

	body = "{\"script\": \"a\\u0000b\", \"timeout_ms\": 100, \"memory_mb\": 512, "
	       "\"stderr\": true}";
	st = parse(body, strlen(body), &p, &err);
	CHECK(st == 0 && p.script_len == 3 && memcmp(p.script, "a\0b", 3) == 0 &&
		  p.timeout_ms == 100 && p.memory_mb == 512 && p.want_stderr,
	      "a NUL inside the script is kept, with the limits and the stderr flag");
	if (st == 0)
		exec_params_free(&p);
	body = "{\"script\": \"x\", \"timeout_ms\": null, \"stderr\": null}";
	st = parse(body, strlen(body), &p, &err);
	CHECK(st == 0 && p.timeout_ms == 0 && !p.want_stderr, "null means the default");
	if (st == 0)
		exec_params_free(&p);
	/* A raw NUL byte outside a string is not JSON, and is seen despite strlen(). */
	st = parse("{\"script\": \"x\"}\0junk", 20, &p, &err);
	CHECK(st == 400, "bytes after a NUL are not ignored");
	{
		char deep[300];

		memcpy(deep, "{\"script\": \"x\", \"a\": ", 21);
		memset(deep + 21, '[', 70);
		memset(deep + 91, ']', 70);
		deep[161] = '}';
		st = parse(deep, 162, &p, &err);
		CHECK(st == 400 && strstr(err, "nested too deeply"), "70 levels are refused");
	}
	{
		size_t n = PROTO_SCRIPT_MAX + 1 + 14;
		char *big = malloc(n);

		memcpy(big, "{\"script\": \"", 12);
		memset(big + 12, 'x', PROTO_SCRIPT_MAX + 1);
		memcpy(big + 12 + PROTO_SCRIPT_MAX + 1, "\"}", 2);
		st = parse(big, n, &p, &err);
		CHECK(st == 413, "a script over the protocol's cap is 413");
		free(big);
	}
	{
		const char *err2 = NULL;
		char msg[160];
		const struct exec_limits lim = {30000, 512};

		st = req_parse_execute("text/plain", "{\"script\": \"x\"}", 15, &lim, &p, &err2,
				       msg, sizeof(msg));
		CHECK(st == 400 && strcmp(err2, "Request must be JSON") == 0,
		      "a JSON body under another Content-Type is refused");
	}
}

static char *body_text(json_t *body)
{
	char *s = jo_dumps(body, NULL);

	json_decref(body);
	return s;
}

static void test_reply(void)
{
	struct proto_result res = {0};
	struct proto_error e = {0};
	struct gw_reply rep;
	char *s;

	res.verdict = PROTO_V_OK;
	res.result = "{\"b\":[1,2.50]}";
	res.result_len = (uint32_t)strlen(res.result);
	res.out = "hi\xff";
	res.out_len = 3;
	res.err = "e";
	res.err_len = 1;
	CHECK(reply_from_result(&res, false, &rep) == 0 && rep.status == 200, "ok is 200");
	s = body_text(rep.body);
	CHECK(s &&
		  strcmp(s, "{\"result\": {\"b\": [1, 2.5]}, \"stdout\": \"hi\xef\xbf\xbd\"}") == 0,
	      "ok body: %s", s);
	free(s);
	CHECK(reply_from_result(&res, true, &rep) == 0, "stderr on request");
	s = body_text(rep.body);
	CHECK(s && strstr(s, "\"stderr\": \"e\"}"), "stderr last: %s", s);
	free(s);

	res.result = "{\"b\":";
	res.result_len = 5;
	CHECK(reply_from_result(&res, false, &rep) == 0 && rep.status == 500 && rep.problem,
	      "a result that is not JSON is 500");
	json_decref(rep.body);

	static const struct {
		uint16_t verdict;
		int status;
	} map[] = {
	    {PROTO_V_NO_MAIN, 400},	  {PROTO_V_ERROR, 400},	     {PROTO_V_TIMEOUT, 400},
	    {PROTO_V_OOM, 400},		  {PROTO_V_BAD_RESULT, 400}, {PROTO_V_KILLED, 400},
	    {PROTO_V_SANDBOX_ERROR, 500}, {PROTO_V_CANCELLED, 503},
	};
	for (size_t i = 0; i < ARRAY_SIZE(map); i++) {
		res.verdict = map[i].verdict;
		res.message = "Some text";
		res.message_len = 9;
		CHECK(reply_from_result(&res, false, &rep) == 0 && rep.status == map[i].status,
		      "verdict %s -> %d", proto_verdict_name(map[i].verdict), map[i].status);
		s = body_text(rep.body);
		CHECK(s &&
			  strcmp(s, "{\"error\": \"Some text\", \"stdout\": \"hi\xef\xbf\xbd\"}") ==
			      0,
		      "error body: %s", s);
		free(s);
	}

	e.code = PROTO_E_BUSY;
	CHECK(reply_from_refusal(&e, &rep) == 0 && rep.status == 503, "BUSY is 503");
	json_decref(rep.body);
	e.code = PROTO_E_INVALID;
	e.message = "memory_mb must be between 32 and 256";
	e.message_len = (uint32_t)strlen(e.message);
	CHECK(reply_from_refusal(&e, &rep) == 0 && rep.status == 400, "INVALID is 400");
	s = body_text(rep.body);
	CHECK(s && strcmp(s, "{\"error\": \"memory_mb must be between 32 and 256\"}") == 0,
	      "INVALID passes sandboxd's text on: %s", s);
	free(s);
	e.code = 77;
	CHECK(reply_from_refusal(&e, &rep) == 0 && rep.status == 500, "an unknown code is 500");
	json_decref(rep.body);

	CHECK(strcmp(reply_truncated(0), "") == 0 &&
		  strcmp(reply_truncated(PROTO_F_STDOUT_TRUNCATED), "stdout") == 0 &&
		  strcmp(reply_truncated(PROTO_F_STDERR_TRUNCATED), "stderr") == 0 &&
		  strcmp(reply_truncated(3), "stdout,stderr") == 0,
	      "truncation header values");
}

static void test_auth(void)
{
	char path[] = "/tmp/test_gateway_keys_XXXXXX";
	struct gw_auth *a = NULL;
	const char *why = NULL;
	unsigned line = 0;
	int fd = mkstemp(path);
	static const char keys[] = "# comment\n  alpha-123  \n\nbeta_456\r\n";

	if (fd < 0 || write(fd, keys, sizeof(keys) - 1) != (ssize_t)(sizeof(keys) - 1)) {
		CHECK(false, "cannot write a key file");
		return;
	}
	close(fd);
	CHECK(auth_load(path, &a, &why, &line) == 0 && auth_count(a) == 2, "two keys loaded");
	CHECK(auth_check(a, "Bearer alpha-123"), "first key");
	CHECK(auth_check(a, "Bearer beta_456"), "second key (CR trimmed)");
	CHECK(auth_check(a, "bearer   beta_456  "), "scheme in any case, blanks around");
	CHECK(!auth_check(a, "Bearer alpha-12"), "a prefix is not the key");
	CHECK(!auth_check(a, "Bearer alpha-1234"), "a longer token is not the key");
	CHECK(!auth_check(a, "Bearer alpha-124"), "one byte off");
	CHECK(!auth_check(a, "Basic alpha-123"), "another scheme");
	CHECK(!auth_check(a, "Bearer"), "no token");
	CHECK(!auth_check(a, "Beareralpha-123"), "no space after the scheme");
	CHECK(!auth_check(a, "Bearer # comment"), "a comment is not a key");
	CHECK(!auth_check(a, NULL), "no header");
	auth_free(a);

	fd = open(path, O_WRONLY | O_TRUNC);
	if (fd >= 0) {
		CHECK(write(fd, "ok\nbad key\n", 11) == 11, "rewrite the key file");
		close(fd);
	}
	a = NULL;
	CHECK(auth_load(path, &a, &why, &line) == -EINVAL && line == 2 && !a,
	      "a key with a space is refused, with its line");
	fd = open(path, O_WRONLY | O_TRUNC);
	if (fd >= 0)
		close(fd);
	CHECK(auth_load(path, &a, &why, &line) == -ENOKEY, "an empty key file is refused");
	unlink(path);
	CHECK(auth_load(path, &a, &why, &line) == -ENOENT, "a missing key file is refused");
}

static void test_config(void)
{
	struct gw_config c;
	char *argv1[] = {"gatewayd", NULL};
	char *argv2[] = {"gatewayd", "--listen", "127.0.0.1:9", NULL};
	char *argv3[] = {"gatewayd", "--max-body", "100", NULL};
	char *argv4[] = {"gatewayd", "--timeout-ms", "60000", "--memory-mb", "1024", NULL};

	unsetenv("PORT");
	CHECK(cfg_parse(&c, 1, argv1) == 0 && strcmp(c.listen, "127.0.0.1:8080") == 0 &&
		  c.max_body == 1 << 20 && c.timeout_ms == 30000 && c.memory_mb == 512 &&
		  strcmp(c.user, "pyexec") == 0 &&
		  strcmp(c.socket_path, "/run/pyexec/sandboxd.sock") == 0,
	      "defaults");
	setenv("PORT", "9090", 1);
	CHECK(cfg_parse(&c, 1, argv1) == 0 && strcmp(c.listen, "0.0.0.0:9090") == 0 &&
		  c.listen_from_env,
	      "PORT gives 0.0.0.0:$PORT");
	CHECK(cfg_parse(&c, 3, argv2) == 0 && strcmp(c.listen, "127.0.0.1:9") == 0,
	      "--listen wins over PORT");
	setenv("PORT", "99999", 1);
	CHECK(cfg_parse(&c, 1, argv1) == -EINVAL, "a bad PORT is refused");
	unsetenv("PORT");
	CHECK(cfg_parse(&c, 3, argv3) == -EINVAL, "--max-body under its bound is refused");
	CHECK(cfg_parse(&c, 5, argv4) == 0 && c.timeout_ms == 60000 && c.memory_mb == 1024,
	      "caps can be raised within their bounds");
}

static void test_framing(void)
{
	static const struct {
		const char *headers[4][2];
		const char *error;
	} cases[] = {
	    {{{"Content-Length", "12"}, {"Content-Type", "application/json"}}, NULL},
	    {{{"Transfer-Encoding", "chunked"}}, NULL},
	    {{{"transfer-encoding", "Chunked"}}, NULL},
	    {{{"X-Weird_Name!", "1"}}, NULL},
	    {{{"Content-Length", "12"}, {"content-length", "12"}},
	     "Bad request: more than one Content-Length"},
	    {{{"Content-Length ", "12"}}, "Bad request: invalid header name"},
	    {{{"Content\tLength", "12"}}, "Bad request: invalid header name"},
	    {{{"", "12"}}, "Bad request: invalid header name"},
	    {{{"Content-Length", "+12"}}, "Bad request: invalid Content-Length"},
	    {{{"Content-Length", "12, 12"}}, "Bad request: invalid Content-Length"},
	    {{{"Transfer-Encoding", "gzip, chunked"}},
	     "Bad request: unsupported Transfer-Encoding"},
	    {{{"Transfer-Encoding", " chunked"}}, "Bad request: unsupported Transfer-Encoding"},
	    {{{"Transfer-Encoding", "chunked"}, {"Transfer-Encoding", "chunked"}},
	     "Bad request: unsupported Transfer-Encoding"},
	    {{{"Transfer-Encoding", "chunked"}, {"Content-Length", "5"}},
	     "Bad request: both Transfer-Encoding and Content-Length"},
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct evkeyvalq h;
		const char *got;

		TAILQ_INIT(&h);
		for (size_t j = 0; j < 4 && cases[i].headers[j][0]; j++)
			evhttp_add_header(&h, cases[i].headers[j][0], cases[i].headers[j][1]);
		got = req_framing_error(&h);
		CHECK(got == cases[i].error ||
			  (got && cases[i].error && !strcmp(got, cases[i].error)),
		      "framing case %zu: %s", i, got ? got : "accepted");
		evhttp_clear_headers(&h);
	}
}

static void test_wire(void)
{
	static const char page[] = "HTTP/1.1 413 Request Entity Too Large\r\n"
				   "Content-Type: text/html\r\n"
				   "Connection: close\r\n"
				   "content-length: 123\r\n"
				   "\r\n<HTML>";
	static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
	struct wire_head h;
	struct evbuffer *out;
	char buf[96], *text;
	size_t len;

	CHECK(wire_parse_head(page, sizeof(page) - 1, &h) == 1 && h.status == 413 && h.has_length &&
		  h.content_length == 123 && h.close &&
		  h.len == sizeof(page) - 1 - strlen("<HTML>") &&
		  h.line_len == strlen("HTTP/1.1 413 Request Entity Too Large"),
	      "evhttp's 413 head: status, length, close, head length");
	CHECK(wire_parse_head(cont, sizeof(cont) - 1, &h) == 1 && h.status == 100 &&
		  !h.has_length && !h.close && h.len == sizeof(cont) - 1,
	      "an interim 100 Continue");
	for (size_t n = 1; n < sizeof(cont) - 1; n++)
		CHECK(wire_parse_head(cont, n, &h) == 0,
		      "a head cut after %zu bytes waits for more", n);
	CHECK(wire_parse_head("<HTML>", 6, &h) == -EBADMSG, "a body is not a head");
	static const char bad_status[] = "HTTP/1.1 99 X\r\n\r\n";
	static const char bad_length[] = "HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n";
	/* sizeof - 1: a length past the literal made the parser read beyond it (ASan). */
	CHECK(wire_parse_head(bad_status, sizeof(bad_status) - 1, &h) == -EBADMSG, "a bad status");
	CHECK(wire_parse_head(bad_length, sizeof(bad_length) - 1, &h) == -EBADMSG,
	      "a bad Content-Length");

	CHECK(strcmp(wire_error_text(413, 1 << 20, buf, sizeof(buf)),
		     "Request body is too large (over 1048576 bytes)") == 0,
	      "413 names the cap");
	CHECK(strcmp(wire_error_text(400, 1, buf, sizeof(buf)), "Bad request") == 0 &&
		  strcmp(wire_error_text(414, 1, buf, sizeof(buf)), "Request URI is too long") ==
		      0 &&
		  strcmp(wire_error_text(417, 1, buf, sizeof(buf)), "Expectation failed") == 0 &&
		  strcmp(wire_error_text(418, 1, buf, sizeof(buf)), "HTTP error") == 0,
	      "texts of the other statuses");

	out = evbuffer_new();
	CHECK(out && wire_parse_head(page, sizeof(page) - 1, &h) == 1 &&
		  wire_write_answer(out, &h, "abc", "Bad \"x\"", 0) == 0,
	      "the JSON answer is written");
	len = out ? evbuffer_get_length(out) : 0;
	text = out ? strndup((char *)evbuffer_pullup(out, -1), len) : NULL;
	CHECK(text && strncmp(text, "HTTP/1.1 413 Request Entity Too Large\r\n", 39) == 0 &&
		  strstr(text, "\r\nContent-Type: application/json\r\n") &&
		  strstr(text, "\r\nX-Request-Id: abc\r\n") &&
		  strstr(text, "\r\nConnection: close\r\n") &&
		  strstr(text, "\r\nContent-Length: 23\r\n\r\n{\"error\": \"Bad \\\"x\\\"\"}\n") &&
		  !strstr(text, "text/html"),
	      "the answer: same status line, JSON type and length, Connection: close kept: %s",
	      text ? text : "(none)");
	free(text);
	if (out)
		evbuffer_free(out);

	out = evbuffer_new();
	h.close = false;
	CHECK(out && wire_write_answer(out, &h, "abc", "x", 3) == 0, "an answer with Retry-After");
	len = out ? evbuffer_get_length(out) : 0;
	text = out ? strndup((char *)evbuffer_pullup(out, -1), len) : NULL;
	CHECK(text && strstr(text, "\r\nRetry-After: 3\r\n") && !strstr(text, "Connection:"),
	      "Retry-After given, no Connection: close unless asked");
	free(text);
	if (out)
		evbuffer_free(out);
}

int main(void)
{
	test_content_type();
	test_parse_execute();
	test_reply();
	test_auth();
	test_config();
	test_framing();
	test_wire();
	return check_summary();
}
