/* reply.c - see reply.h. */
#include "reply.h"

#include <errno.h>
#include <string.h>

#include "jsonout.h"

#define INTERNAL_ERROR "Internal server error"

json_t *reply_error_body(const char *msg)
{
	json_t *o = json_object();

	if (!o || json_object_set_new(o, "error", json_string(msg)) < 0) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static int set_new(json_t *obj, const char *key, json_t *val)
{
	/* json_object_set_new() steals val even on failure, and a NULL val is an error there. */
	return json_object_set_new(obj, key, val) < 0 ? -ENOMEM : 0;
}

/* The status each verdict gets: the script's own failures are the client's request's fault
 * (400, as the seed's Flask app answered them); a jail that could not be built is ours (500). */
static int verdict_status(uint16_t verdict)
{
	switch (verdict) {
	case PROTO_V_OK:
		return 200;
	case PROTO_V_NO_MAIN:
	case PROTO_V_ERROR:
	case PROTO_V_TIMEOUT:
	case PROTO_V_OOM:
	case PROTO_V_BAD_RESULT:
	case PROTO_V_KILLED:
		return 400;
	case PROTO_V_CANCELLED:
		/* We cancel only jobs whose client left; any other cancellation is sandboxd
		 * going away, which a retry survives. */
		return 503;
	case PROTO_V_SANDBOX_ERROR:
	default:
		return 500;
	}
}

int reply_from_result(const struct proto_result *res, bool want_stderr, struct gw_reply *ret)
{
	json_t *body, *val;
	json_error_t jerr;

	*ret = (struct gw_reply){.status = verdict_status(res->verdict),
				 .verdict = proto_verdict_name(res->verdict)};
	body = json_object();
	if (!body)
		return -ENOMEM;
	if (res->verdict == PROTO_V_OK) {
		/* Parse and re-encode: what we send is JSON by construction. ALLOW_NUL: a
		 * Python string may hold U+0000. */
		if (jo_too_deep(res->result, res->result_len, REPLY_RESULT_DEPTH_MAX))
			val = NULL;
		else
			val = json_loadb(res->result, res->result_len,
					 JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
		if (!val) {
			json_decref(body);
			ret->status = 500;
			ret->problem = "sandboxd sent a result that is not JSON";
			ret->body = reply_error_body(INTERNAL_ERROR);
			return ret->body ? 0 : -ENOMEM;
		}
		if (set_new(body, "result", val) < 0)
			goto nomem;
	} else if (res->message_len > 0) {
		if (set_new(body, "error", jo_string_lossy(res->message, res->message_len)) < 0)
			goto nomem;
	} else {
		/* sandboxd always sends the text; never answer an error without one. */
		if (set_new(body, "error", json_string(proto_verdict_name(res->verdict))) < 0)
			goto nomem;
	}
	/* Every script outcome carries what the script printed, the failures too: the partial
	 * output is often what explains the error. */
	if (set_new(body, "stdout", jo_string_lossy(res->out, res->out_len)) < 0)
		goto nomem;
	if (want_stderr && set_new(body, "stderr", jo_string_lossy(res->err, res->err_len)) < 0)
		goto nomem;
	ret->body = body;
	return 0;
nomem:
	json_decref(body);
	return -ENOMEM;
}

int reply_from_refusal(const struct proto_error *e, struct gw_reply *ret)
{
	const char *msg;

	*ret = (struct gw_reply){.status = 503, .verdict = "refused"};
	switch (e->code) {
	case PROTO_E_BUSY:
		msg = "Server busy: the execution queue is full, retry later";
		break;
	case PROTO_E_SHUTDOWN:
		msg = "The sandbox is shutting down, retry later";
		break;
	case PROTO_E_NOT_READY: {
		/* sandboxd refuses every job on a host where its jail cannot hold, and says why;
		 * so does /health. */
		static const char pre[] = "The sandbox is not ready: ";
		char text[sizeof(pre) + PROTO_MESSAGE_MAX];
		size_t n = e->message_len < PROTO_MESSAGE_MAX ? e->message_len : PROTO_MESSAGE_MAX;

		if (!n) {
			msg = "The sandbox is not ready yet, retry later";
			break;
		}
		ret->problem = "sandboxd refuses jobs on this host";
		memcpy(text, pre, sizeof(pre) - 1);
		memcpy(text + sizeof(pre) - 1, e->message, n);
		ret->body = json_object();
		if (!ret->body ||
		    set_new(ret->body, "error", jo_string_lossy(text, sizeof(pre) - 1 + n)) < 0) {
			json_decref(ret->body);
			ret->body = NULL;
			return -ENOMEM;
		}
		return 0;
	}
	case PROTO_E_INVALID: {
		/* A limit sandboxd refuses although it is within our caps: its caps are lower
		 * than ours (a configuration mismatch), but the client can still act on the text,
		 * e.g. "timeout_ms must be between 100 and 10000". */
		ret->status = 400;
		ret->problem = "sandboxd refused the request's limits";
		ret->body = json_object();
		if (!ret->body ||
		    set_new(ret->body, "error", jo_string_lossy(e->message, e->message_len)) < 0) {
			json_decref(ret->body);
			ret->body = NULL;
			return -ENOMEM;
		}
		return 0;
	}
	default:
		ret->status = 500;
		ret->problem = "sandboxd failed the job";
		msg = INTERNAL_ERROR;
	}
	ret->body = reply_error_body(msg);
	return ret->body ? 0 : -ENOMEM;
}

const char *reply_truncated(uint16_t flags)
{
	switch (flags & (PROTO_F_STDOUT_TRUNCATED | PROTO_F_STDERR_TRUNCATED)) {
	case PROTO_F_STDOUT_TRUNCATED:
		return "stdout";
	case PROTO_F_STDERR_TRUNCATED:
		return "stderr";
	case PROTO_F_STDOUT_TRUNCATED | PROTO_F_STDERR_TRUNCATED:
		return "stdout,stderr";
	default:
		return "";
	}
}
