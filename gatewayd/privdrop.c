/* privdrop.c - see privdrop.h. gatewayd parses HTTP and JSON from the network: it is the
 * process most likely to be compromised, so it keeps nothing a compromise could use. */
#include "privdrop.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <sys/capability.h>
#include <sys/prctl.h>
#include <unistd.h>

int priv_resolve_user(const char *name, uid_t *ret_uid, gid_t *ret_gid)
{
	struct passwd *pw;

	errno = 0;
	pw = getpwnam(name);
	if (!pw)
		return errno ? -errno : -ENOENT;
	if (pw->pw_uid == 0)
		return -EPERM;
	*ret_uid = pw->pw_uid;
	*ret_gid = pw->pw_gid;
	return 0;
}

static int caps_clear(void)
{
	cap_t caps = cap_init(); /* all three sets empty */
	int r = 0;

	if (!caps)
		return -errno;
	if (cap_set_proc(caps) < 0)
		r = -errno;
	cap_free(caps);
	if (r < 0)
		return r;
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
		return -errno;
	return 0;
}

static int bounding_drop(bool must)
{
	for (cap_value_t c = 0; c <= CAP_LAST_CAP; c++) {
		if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) == 0)
			continue;
		if (errno == EINVAL) /* a capability this kernel does not know */
			continue;
		if (errno == EPERM && !must) /* no CAP_SETPCAP: nothing to shed */
			return 0;
		return -errno;
	}
	return 0;
}

int priv_drop(bool is_root, uid_t uid, gid_t gid, const char **ret_step)
{
	int r;

	if (is_root) {
		/* The bounding set first, while we still hold CAP_SETPCAP: it caps what any later
		 * execve could grant, and only root can shrink it. */
		*ret_step = "dropping the capability bounding set";
		if ((r = bounding_drop(true)) < 0)
			return r;
		/* Without KEEPCAPS, the uid change below empties the permitted set. A parent may
		 * have set it; clear it rather than assume. */
		*ret_step = "clearing PR_SET_KEEPCAPS";
		if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0)
			return -errno;
		/* Root's supplementary groups must not survive; the account's primary group is
		 * the one that opens sandboxd's socket directory (0750 root:pyexec). */
		*ret_step = "setgroups";
		if (setgroups(0, NULL) < 0)
			return -errno;
		/* Groups before the uid: once the uid is not 0, they cannot change any more. */
		*ret_step = "setresgid";
		if (setresgid(gid, gid, gid) < 0)
			return -errno;
		/* All three uids, so no saved uid 0 is left to switch back to. */
		*ret_step = "setresuid";
		if (setresuid(uid, uid, uid) < 0)
			return -errno;
	} else {
		/* Not root: whatever capabilities the account was given (file capabilities,
		 * ambient ones from a service manager) go too; the bounding set only shrinks with
		 * CAP_SETPCAP, which it usually lacks. */
		*ret_step = "dropping the capability bounding set";
		if ((r = bounding_drop(false)) < 0)
			return r;
	}
	/* The kernel emptied the sets at the uid change; say so explicitly, ambient included. */
	*ret_step = "clearing capabilities";
	if ((r = caps_clear()) < 0)
		return r;
	/* No execve can ever add privileges again (setuid binaries, file capabilities). */
	*ret_step = "PR_SET_NO_NEW_PRIVS";
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return -errno;
	return 0;
}

int priv_verify(const char **ret_why)
{
	uid_t ru, eu, su;
	cap_flag_value_t v;
	cap_t caps;

	if (getresuid(&ru, &eu, &su) < 0 || ru == 0 || eu == 0 || su == 0) {
		*ret_why = "a uid is still 0";
		return -EPERM;
	}
	/* The classic check: if this works, the drop did not happen. */
	if (setuid(0) == 0) {
		*ret_why = "setuid(0) still succeeds";
		return -EPERM;
	}
	caps = cap_get_proc();
	if (!caps) {
		*ret_why = "cannot read the capability sets";
		return -EPERM;
	}
	for (cap_value_t c = 0; c <= CAP_LAST_CAP; c++) {
		bool held = false;

		if (cap_get_flag(caps, c, CAP_PERMITTED, &v) == 0 && v == CAP_SET)
			held = true;
		if (cap_get_flag(caps, c, CAP_EFFECTIVE, &v) == 0 && v == CAP_SET)
			held = true;
		if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, c, 0, 0) == 1)
			held = true;
		if (held) {
			cap_free(caps);
			*ret_why = "a capability is still held";
			return -EPERM;
		}
	}
	cap_free(caps);
	if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1) {
		*ret_why = "no_new_privs is not set";
		return -EPERM;
	}
	return 0;
}
