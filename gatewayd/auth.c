/* auth.c - see auth.h. */
#include "auth.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "cleanup.h"
#include "proto.h"

struct gw_auth {
	size_t n;
	struct {
		char *key;
		size_t len;
	} keys[];
};

#define AUTH_FILE_MAX (AUTH_KEYS_MAX * (AUTH_KEY_MAX + 2))

/* The key file's text is secret: wiped before it is freed, on every path out (read_file()
 * has proto_read_capped() allocate AUTH_FILE_MAX + 1 bytes). */
static void wipe_freep(char **p)
{
	if (*p) {
		explicit_bzero(*p, AUTH_FILE_MAX + 1);
		free(*p);
	}
}
#define _cleanup_wipe_ __attribute__((cleanup(wipe_freep)))

static int read_file(const char *path, char **ret_buf, size_t *ret_len)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);

	if (fd < 0)
		return -errno;
	return proto_read_capped(fd, AUTH_FILE_MAX, ret_buf, ret_len);
}

void auth_free(struct gw_auth *a)
{
	if (!a)
		return;
	for (size_t i = 0; i < a->n; i++) {
		/* Keys are secrets: do not leave them in freed memory. */
		explicit_bzero(a->keys[i].key, a->keys[i].len);
		free(a->keys[i].key);
	}
	free(a);
}

static void auth_freep(struct gw_auth **a)
{
	auth_free(*a);
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r';
}

int auth_load(const char *path, struct gw_auth **ret, const char **ret_why, unsigned *ret_line)
{
	__attribute__((cleanup(auth_freep))) struct gw_auth *a = NULL;
	_cleanup_wipe_ char *buf = NULL;
	size_t len = 0, pos = 0;
	unsigned line = 0;
	int r;

	*ret_line = 0;
	r = read_file(path, &buf, &len);
	if (r < 0) {
		*ret_why = r == -EFBIG ? "the file is too large" : "cannot read the file";
		return r;
	}
	a = calloc(1, sizeof(*a) + AUTH_KEYS_MAX * sizeof(a->keys[0]));
	if (!a) {
		*ret_why = "out of memory";
		return -ENOMEM;
	}
	while (pos < len) {
		size_t start = pos, end;
		char *nl = memchr(buf + pos, '\n', len - pos);

		end = nl ? (size_t)(nl - buf) : len;
		pos = end + 1;
		line++;
		while (start < end && is_blank(buf[start]))
			start++;
		while (end > start && is_blank(buf[end - 1]))
			end--;
		if (start == end || buf[start] == '#')
			continue;
		for (size_t i = start; i < end; i++) {
			if ((unsigned char)buf[i] <= 0x20 || (unsigned char)buf[i] >= 0x7f) {
				*ret_why = "a key must be printable ASCII without spaces";
				*ret_line = line;
				return -EINVAL;
			}
		}
		if (end - start > AUTH_KEY_MAX) {
			*ret_why = "a key is longer than 512 bytes";
			*ret_line = line;
			return -EINVAL;
		}
		if (a->n == AUTH_KEYS_MAX) {
			*ret_why = "more than 4096 keys";
			return -E2BIG;
		}
		a->keys[a->n].key = strndup(buf + start, end - start);
		if (!a->keys[a->n].key) {
			*ret_why = "out of memory";
			return -ENOMEM;
		}
		a->keys[a->n].len = end - start;
		a->n++;
	}
	if (a->n == 0) {
		/* A key file without keys would lock every client out; that is a mistake, not a
		 * policy. */
		*ret_why = "the file holds no key";
		return -ENOKEY;
	}
	*ret = steal_pointer(&a);
	return 0;
}

size_t auth_count(const struct gw_auth *a)
{
	return a ? a->n : 0;
}

/* Equal when the lengths match and every byte does. The loop runs over the presented token
 * (the client knows its length anyway) and reads the key cyclically, so its duration does not
 * depend on the key's length or contents. */
static bool ct_equal(const char *tok, size_t tok_len, const char *key, size_t key_len)
{
	volatile unsigned char diff = tok_len != key_len;

	for (size_t i = 0; i < tok_len; i++)
		diff |= (unsigned char)tok[i] ^ (unsigned char)key[i % key_len];
	return diff == 0;
}

bool auth_check(const struct gw_auth *a, const char *authorization)
{
	const char *tok;
	size_t tok_len;
	bool ok = false;

	if (!a || !authorization)
		return false;
	/* RFC 6750: the scheme is case-insensitive, then one or more spaces, then the token. */
	if (strncasecmp(authorization, "Bearer", 6) != 0 || authorization[6] != ' ')
		return false;
	tok = authorization + 6;
	while (*tok == ' ')
		tok++;
	tok_len = strlen(tok);
	while (tok_len > 0 && (tok[tok_len - 1] == ' ' || tok[tok_len - 1] == '\t'))
		tok_len--;
	if (tok_len == 0 || tok_len > AUTH_KEY_MAX)
		return false;
	/* Every key is compared, without stopping at a match. */
	for (size_t i = 0; i < a->n; i++)
		ok |= ct_equal(tok, tok_len, a->keys[i].key, a->keys[i].len);
	return ok;
}
