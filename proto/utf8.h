/* utf8.h - lossy UTF-8 decoding of captured output, shared by the CLI and the gateway. */
#pragma once

#include <stddef.h>

/* Returns a malloc'ed, NUL-terminated copy of the `len` bytes at `s` in which every maximal
 * invalid subpart is replaced by U+FFFD (the Unicode recommendation, which is also what Python's
 * errors="replace" does), or NULL when out of memory. NUL bytes are kept: use *ret_len, never
 * strlen(). A script may print any bytes, and JSON strings must be valid UTF-8. */
char *utf8_lossy(const char *s, size_t len, size_t *ret_len);
