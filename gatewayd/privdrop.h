/* privdrop.h - becoming an ordinary account with no way back, before any request is read. */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

/* Looks the account up. Returns 0, -ENOENT when it does not exist, or -EPERM when it is root
 * (uid 0): the gateway never serves as root. */
int priv_resolve_user(const char *name, uid_t *ret_uid, gid_t *ret_gid);

/* Started as root: bounding set, groups, gids, uids, capabilities, no_new_privs, in that order
 * (each step's reason is at the step). Started as someone else: only sheds what that account
 * may shed. Returns 0 or -errno; *ret_step names the step that failed. */
int priv_drop(bool is_root, uid_t uid, gid_t gid, const char **ret_step);

/* Checks the result rather than trusting the steps: no uid 0 in any slot, no capability in the
 * permitted, effective or ambient sets, no_new_privs on. Returns 0 or -EPERM with *ret_why. */
int priv_verify(const char **ret_why);
