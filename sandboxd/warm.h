/* warm.h - the warm path: a zygote (sandboxd/zygote) with CPython, numpy and pandas loaded
 * clones each job's process ahead of time ("spares"); a job then pays only for running.
 * Every spare is jailed exactly like a cold job's child (jail_enter) and serves one job.
 *
 * The zygote is started at start-up, restarted with a back-off when it dies, and only used
 * once a canary job has run through it ("verified"). While it is not, jobs run cold. */
#pragma once

#include <stdbool.h>

#include "sbx.h"

/* Starts the zygote when cfg->warm_spares > 0. Returns 0 or -errno (nothing started). */
int warm_init(struct sbx *s);
/* Jobs with the default limits run warm (the zygote is verified, or spares are left). */
bool warm_up(const struct sbx *s);
/* The zygote is ready and its canary has yet to pass. */
bool warm_verifying(const struct sbx *s);
/* A spare with a process is there to be adopted. */
bool warm_has_spare(const struct sbx *s);
/* Asks the zygote for spares until there are cfg->warm_spares of them. */
void warm_refill(struct sbx *s);
/* The same, once the loop has done the I/O now due (an answer just queued goes out first). */
void warm_refill_soon(struct sbx *s);
/* A spare died before its job; after a few in a row the zygote is restarted. */
void warm_spare_failed(struct sbx *s);
/* The canary job ran warm and passed (0), or failed (-EPERM): the warm path is then off. */
void warm_verified(struct sbx *s, int r, const char *why);
/* Called once the zygote is ready, to run the warm canary; set by main.c. */
void warm_set_on_ready(struct sbx *s, void (*on_ready)(struct sbx *s));
/* At exit: stops the zygote and every spare, removes their cgroups. */
void warm_stop(struct sbx *s);
