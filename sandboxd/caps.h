/* caps.h - privileges: every capability set emptied and locked, no_new_privs. */
#pragma once

/* Drops the bounding and ambient sets, clears effective/permitted/inheritable with libcap and
 * locks the securebits, then sets no_new_privs. Returns 0 or -errno. */
int caps_drop_all(void);
