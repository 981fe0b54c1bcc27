/* canary.h - the start-up self-test: a real job through the real jail, which reports what it
 * can see; sandboxd serves only if nothing it sees is wrong. */
#pragma once

#include "sbx.h"

/* Starts the canary job; `done` gets 0 when the jail holds, or -EPERM with a reason. */
int canary_start(struct sbx *s, void (*done)(struct sbx *s, int r, const char *why));
