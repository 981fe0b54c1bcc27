/* sbx.h - the daemon's one context, passed explicitly (no mutable globals outside main.c). */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/types.h>

#include "cgroup.h"
#include "config.h"
#include "mounts.h"
#include "scfilter.h"

struct event_base;
struct evconnlistener;
struct job;
struct conn;
struct warm;

TAILQ_HEAD(job_list, job);
LIST_HEAD(conn_list, conn);

struct sbx {
	struct event_base *base;
	const struct config *cfg;
	struct cg_ctx cg;
	struct mnt_plan plan;
	struct sc_filter filter;
	char runner[512];
	char zygote[512];

	bool *slot_used;        /* n_slots entries; slot i runs as uid_base + i */
	unsigned n_slots;       /* max_running jobs plus warm_spares spares */
	unsigned running;       /* jobs holding a slot (from clone until their cgroup is gone) */
	struct job_list queue;  /* waiting for a slot, FIFO */
	unsigned queued;
	struct job_list waiting; /* admitted (counted in running), waiting for a warm spare */
	struct job_list active; /* holding a slot */
	struct job_list spares; /* warm: started spares first, then those the zygote has yet to
				 * clone */
	unsigned n_spares;
	struct job_list spares_gone; /* warm: discarded spares whose cgroups are being removed */
	struct warm *warm;      /* the zygote, or NULL when the warm path is off */
	struct conn_list conns;
	struct evconnlistener *listener;

	bool ready; /* the canary passed */
	char refusal[512]; /* a fatal host audit finding: no job runs, PING and SUBMIT say why */
	bool stopping;
	unsigned stale_cgroups; /* a dead daemon's job cgroups still busy: swept every tick */
	uid_t gateway_uid;
	gid_t gateway_gid;
	uint64_t jobs_done;
};
