/* auth.h - optional API keys: "Authorization: Bearer <key>" against a file of keys. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

struct gw_auth;

#define AUTH_KEY_MAX 512   /* bytes of one key */
#define AUTH_KEYS_MAX 4096 /* keys in the file */

/* Reads the key file: one key per line; blank lines and lines starting with '#' are skipped;
 * surrounding blanks are trimmed; a key is printable ASCII without spaces. Returns 0, or -errno
 * with *ret_why and *ret_line (1-based; 0 when the error is not about one line). The keys are
 * never logged, not even in errors. */
int auth_load(const char *path, struct gw_auth **ret, const char **ret_why, unsigned *ret_line);
size_t auth_count(const struct gw_auth *a);
void auth_free(struct gw_auth *a);

/* True when the Authorization header value carries one of the keys. The comparison takes time
 * that depends only on the presented token's length and the number of keys, never on how much
 * of a key matched. */
bool auth_check(const struct gw_auth *a, const char *authorization);
