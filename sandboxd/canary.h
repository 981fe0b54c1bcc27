/* canary.h - the start-up self-test: a real job through the real jail, which reports what it
 * can see; sandboxd serves only if nothing it sees is wrong. */
#pragma once

#include <stdbool.h>

#include "sbx.h"

/* Starts the canary job; `done` gets 0 when the jail holds, or -EPERM with a reason. warm: in
 * a spare of the zygote being verified; if the zygote went away meanwhile and the job ran
 * cold, `done` is not called (the next zygote gets its own canary). */
int canary_start(struct sbx *s, void (*done)(struct sbx *s, int r, const char *why), bool warm);
