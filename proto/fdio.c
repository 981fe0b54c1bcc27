/* fdio.c - blocking frame I/O for simple clients (the CLI, tests).
 *
 * The daemon itself reads with libevent and proto_frame_check(); these helpers are for
 * programs that have one connection and nothing else to do while they wait.
 */
#include "proto.h"
#include "cleanup.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int proto_write_all(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	bool sock = true;
	ssize_t n;

	while (len > 0) {
		/* send() with MSG_NOSIGNAL: a peer that went away must be an -EPIPE we can report,
		 * not a SIGPIPE that kills the client before it says why. Pipes and files get
		 * ENOTSOCK and fall back to write(). */
		if (sock) {
			n = send(fd, p, len, MSG_NOSIGNAL);
			if (n < 0 && errno == ENOTSOCK) {
				sock = false;
				continue;
			}
		} else {
			n = write(fd, p, len);
		}
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0) /* no progress and no error: don't spin */
			return -EIO;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Reads exactly `len` bytes. EOF anywhere, even before the first byte, is -ECONNRESET: a caller
 * that asked for a frame did not get one. */
static int read_exact(int fd, void *buf, size_t len)
{
	uint8_t *p = buf;
	ssize_t n;

	while (len > 0) {
		n = read(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -ECONNRESET;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int proto_read_frame(int fd, struct proto_hdr *ret_hdr, uint8_t **ret_payload)
{
	uint8_t raw[PROTO_HDR_SIZE];
	_cleanup_free_ uint8_t *payload = NULL;
	struct proto_hdr h;
	int r;

	r = read_exact(fd, raw, sizeof(raw));
	if (r < 0)
		return r;
	/* Validate before malloc: a hostile length must cost nothing (and the payload is left
	 * unread, since the caller drops the connection anyway). */
	r = proto_hdr_decode(raw, &h);
	if (r < 0)
		return r;
	if (h.length > 0) {
		payload = malloc(h.length);
		if (!payload)
			return -ENOMEM;
		r = read_exact(fd, payload, h.length);
		if (r < 0)
			return r;
	}
	*ret_hdr = h;
	*ret_payload = steal_pointer(&payload);
	return 0;
}

int proto_read_capped(int fd, size_t cap, char **ret_buf, size_t *ret_len)
{
	_cleanup_free_ char *buf = malloc(cap + 1);
	size_t len = 0;
	ssize_t n = 0;

	if (!buf)
		return -ENOMEM;
	/* One byte more than the cap tells "exactly at the cap" from "too large". */
	while (len <= cap) {
		n = read(fd, buf + len, cap + 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	if (n < 0 || len > cap) {
		int r = n < 0 ? -errno : -EFBIG;
		/* The bytes may be secret (API keys): never leave them in freed memory. */
		explicit_bzero(buf, len);
		return r;
	}
	buf[len] = '\0';
	*ret_buf = steal_pointer(&buf);
	*ret_len = len;
	return 0;
}
