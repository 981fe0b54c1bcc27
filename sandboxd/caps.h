/* caps.h - privileges: every capability set emptied and locked, no_new_privs. */
#pragma once

#include <stdbool.h>

/* Drops the bounding and ambient sets, clears effective/permitted/inheritable with libcap and
 * locks the securebits, then sets no_new_privs. Returns 0 or -errno. */
int caps_drop_all(void);

/* For the warm path's zygote, which makes job processes and runs no client code: keeps only
 * the capabilities in keep[] (bounding, permitted, effective; ambient and inheritable empty),
 * then sets no_new_privs. Returns 0 or -errno. */
int caps_keep_only(const int *keep, unsigned n);

/* The calling process holds the capability in its effective set. */
bool caps_have(int cap);
