/* jsonout.h - the one JSON writer behind every body pyexec shows: the gateway's HTTP replies and
 * the CLI's output, so both print the same bytes for the same answer.
 *
 * The look is Python's json.dumps(v, ensure_ascii=False): separators ", " and ": ", object keys
 * in insertion order, non-ASCII text as raw UTF-8, floats as their shortest round-trip repr with
 * ".0" kept on integral values (3.0, 0.1, 1e+16). jansson's own json_dumps() prints reals with
 * %.17g (0.1 becomes 0.10000000000000001) and drops the ".0" of 3.0 in some builds.
 */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* Values nested deeper than this are not written (the writer recurses). Every value it gets
 * was parsed under a much smaller limit (see jo_too_deep()). */
#define JO_MAX_DEPTH 256

/* Returns the JSON text of `v` as a malloc'ed NUL-terminated string, its length in *ret_len when
 * that is not NULL, or NULL when out of memory, nested over JO_MAX_DEPTH, or holding a real that
 * is not finite. The text never contains a raw NUL (U+0000 is written as \u0000). */
char *jo_dumps(const json_t *v, size_t *ret_len);
/* The same without spaces after "," and ":" (what travels between the daemons). */
char *jo_dumps_compact(const json_t *v, size_t *ret_len);

/* Writes the shortest decimal that reads back as exactly `d`, as Python's repr(float) does.
 * Returns its length, -EDOM for NaN and infinities, or -ENOBUFS when `size` is under 32. */
int jo_format_real(double d, char *buf, size_t size);

/* A JSON string from bytes that may be invalid UTF-8 (captured stdout, stderr): each invalid
 * sequence becomes U+FFFD. NULL when out of memory. */
json_t *jo_string_lossy(const char *s, size_t len);

/* True when the JSON text nests arrays and objects more than `max_depth` deep. A linear scan
 * that needs no stack, run before json_loadb() so a hostile body cannot make the parser
 * recurse deeply (jansson's own limit is 2048). For text that is not JSON the answer is
 * meaningless but harmless: the parser rejects it next. */
bool jo_too_deep(const char *text, size_t len, unsigned max_depth);
