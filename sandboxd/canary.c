/* canary.c - see canary.h. The checks follow ../shared/SECURITY.md item 15. */
#include "canary.h"

#include <errno.h>
#include <event2/event.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "job.h"
#include "log.h"
#include "proto.h"

static const char canary_script[] =
	"import os\n"
	"def main():\n"
	"    st = {}\n"
	"    for line in open('/proc/self/status'):\n"
	"        k, _, v = line.partition(':')\n"
	"        st[k] = v.strip()\n"
	"    ifaces = [l.split(':')[0].strip() for l in open('/proc/net/dev').readlines()[2:]]\n"
	"    def can_create(p):\n"
	"        try:\n"
	"            os.close(os.open(p, os.O_WRONLY | os.O_CREAT, 0o600))\n"
	"            return True\n"
	"        except OSError:\n"
	"            return False\n"
	"    return {'uid': os.getuid(), 'euid': os.geteuid(), 'gid': os.getgid(),\n"
	"            'pid': os.getpid(), 'hostname': os.uname().nodename,\n"
	"            'caps': [st['CapInh'], st['CapPrm'], st['CapEff'], st['CapBnd'], st['CapAmb']],\n"
	"            'seccomp': st['Seccomp'], 'nnp': st['NoNewPrivs'], 'ifaces': ifaces,\n"
	"            'root_writable': can_create('/canary') or os.access('/', os.W_OK),\n"
	"            'usr_writable': can_create('/usr/canary') or os.access('/usr', os.W_OK)}\n";

struct canary {
	struct sbx *s;
	bool warm;
	void (*done)(struct sbx *s, int r, const char *why);
	int r;
	char why[PROTO_MESSAGE_MAX + 64];
};

static const char *canary_verdict(json_t *v)
{
	json_t *caps = json_object_get(v, "caps"), *ifaces = json_object_get(v, "ifaces"), *x;
	size_t i;

	if (json_integer_value(json_object_get(v, "uid")) == 0 ||
	    json_integer_value(json_object_get(v, "euid")) == 0 ||
	    !json_is_integer(json_object_get(v, "uid")))
		return "the job runs as uid 0";
	if (!json_is_array(caps) || json_array_size(caps) != 5)
		return "the job's capabilities are unknown";
	json_array_foreach (caps, i, x)
		if (!json_is_string(x) || strcmp(json_string_value(x), "0000000000000000"))
			return "the job holds a capability";
	if (!json_is_string(json_object_get(v, "seccomp")) ||
	    strcmp(json_string_value(json_object_get(v, "seccomp")), "2"))
		return "the job runs without a seccomp filter";
	if (!json_is_string(json_object_get(v, "nnp")) ||
	    strcmp(json_string_value(json_object_get(v, "nnp")), "1"))
		return "the job runs without no_new_privs";
	if (!json_is_array(ifaces))
		return "the job's network interfaces are unknown";
	json_array_foreach (ifaces, i, x)
		if (!json_is_string(x) || strcmp(json_string_value(x), "lo"))
			return "the job sees a network interface other than lo";
	if (!json_is_false(json_object_get(v, "root_writable")) ||
	    !json_is_false(json_object_get(v, "usr_writable")))
		return "the job's root is writable";
	if (json_integer_value(json_object_get(v, "pid")) != 1)
		return "the runner is not pid 1 of its own PID namespace";
	return NULL;
}

static void canary_report(evutil_socket_t fd, short what, void *arg)
{
	struct canary *c = arg;

	c->done(c->s, c->r, c->why);
	free(c);
}

static void on_canary_done(struct job *j, const struct proto_result *r, void *arg)
{
	struct canary *c = arg;
	json_t *v = NULL;
	const char *why = NULL;

	if (c->warm && !job_is_warm(j)) {
		free(c);
		return;
	}
	if (r->verdict != PROTO_V_OK) {
		snprintf(c->why, sizeof(c->why), "canary job failed: %.*s", (int)r->message_len,
			 r->message);
		why = c->why;
	} else {
		v = json_loadb(r->result, r->result_len, 0, NULL);
		why = v ? canary_verdict(v) : "canary result is not JSON";
		if (why)
			snprintf(c->why, sizeof(c->why), "%s", why);
	}
	json_decref(v);
	if (!why)
		log_info("canary (%s): uid 1000, no capabilities, seccomp 2, no_new_privs, lo only, "
			 "read-only root, pid 1 (%u ms)",
			 c->warm ? "warm" : "cold", r->wall_ms);
	c->r = why ? -EPERM : 0;
	/* The verdict goes out from the event loop, never from inside canary_start(): a job
	 * that fails before its child exists (its cgroup, clone3) finishes within job_submit(),
	 * before main() enters the loop, and an event_base_loopbreak() then is forgotten
	 * (event_base_loop() clears the flag on entry): sandboxd logged "refusing to serve"
	 * and hung, neither serving nor exiting. */
	if (event_base_once(c->s->base, -1, EV_TIMEOUT, canary_report, c, NULL) < 0)
		canary_report(-1, 0, c);
}

int canary_start(struct sbx *s, void (*done)(struct sbx *s, int r, const char *why), bool warm)
{
	struct proto_submit sub = { .script = canary_script,
				    .script_len = (uint32_t)strlen(canary_script) };
	struct canary *c = calloc(1, sizeof(*c));
	struct job *j;
	int r;

	if (!c)
		return -ENOMEM;
	c->s = s;
	c->done = done;
	c->warm = warm;
	j = job_new(s, 0, &sub, on_canary_done, c);
	if (!j) {
		free(c);
		return -ENOMEM;
	}
	job_set_internal(j);
	if (warm)
		job_set_warm_only(j);
	r = job_submit(j); /* on failure the job is freed, without a report */
	if (r < 0)
		free(c);
	return r;
}
