/* fuzz.h - what the libFuzzer targets in this directory share: one assertion that aborts (so
 * libFuzzer saves the input), and reference checks written independently of the code under
 * test (a decoding UTF-8 validator, a bit-exact JSON comparison, nesting depths), so a target
 * never checks a function against itself.
 */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A broken invariant: say which, then abort() so libFuzzer writes the crash-* reproducer. */
#define FZ_CHECK(cond, ...)                                                                        \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "%s:%d: invariant failed: %s: ", __FILE__, __LINE__,       \
				#cond);                                                            \
			fprintf(stderr, __VA_ARGS__);                                              \
			fputc('\n', stderr);                                                       \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

/* Well-formed UTF-8 (Unicode 15, table 3-7), decided by decoding each scalar value and
 * checking its range, not by the per-byte ranges proto/utf8.c uses. */
static inline bool fz_utf8_valid(const void *buf, size_t n)
{
	static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
	const uint8_t *s = buf;
	size_t i = 0;

	while (i < n) {
		uint8_t c = s[i];
		size_t len, k;
		uint32_t cp;

		if (c < 0x80) {
			i++;
			continue;
		}
		if ((c & 0xE0) == 0xC0) {
			len = 2;
			cp = c & 0x1F;
		} else if ((c & 0xF0) == 0xE0) {
			len = 3;
			cp = c & 0x0F;
		} else if ((c & 0xF8) == 0xF0) {
			len = 4;
			cp = c & 0x07;
		} else {
			return false;
		}
		if (n - i < len)
			return false;
		for (k = 1; k < len; k++) {
			if ((s[i + k] & 0xC0) != 0x80)
				return false;
			cp = cp << 6 | (s[i + k] & 0x3F);
		}
		if (cp < min_cp[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
			return false;
		i += len;
	}
	return true;
}

/* The same value, bit for bit: json_equal() calls -0.0 and 0.0 equal and ignores key order;
 * a writer that loses either is wrong all the same. */
static inline bool fz_json_same(const json_t *a, const json_t *b)
{
	if (json_typeof(a) != json_typeof(b))
		return false;
	switch (json_typeof(a)) {
	case JSON_OBJECT: {
		void *ia = json_object_iter((json_t *)a), *ib = json_object_iter((json_t *)b);

		if (json_object_size(a) != json_object_size(b))
			return false;
		for (; ia && ib; ia = json_object_iter_next((json_t *)a, ia),
				 ib = json_object_iter_next((json_t *)b, ib)) {
			if (strcmp(json_object_iter_key(ia), json_object_iter_key(ib)) ||
			    !fz_json_same(json_object_iter_value(ia), json_object_iter_value(ib)))
				return false;
		}
		return !ia && !ib;
	}
	case JSON_ARRAY:
		if (json_array_size(a) != json_array_size(b))
			return false;
		for (size_t i = 0; i < json_array_size(a); i++)
			if (!fz_json_same(json_array_get(a, i), json_array_get(b, i)))
				return false;
		return true;
	case JSON_STRING:
		return json_string_length(a) == json_string_length(b) &&
		       !memcmp(json_string_value(a), json_string_value(b), json_string_length(a));
	case JSON_INTEGER:
		return json_integer_value(a) == json_integer_value(b);
	case JSON_REAL: {
		double da = json_real_value(a), db = json_real_value(b);

		return !memcmp(&da, &db, sizeof(da));
	}
	default:
		return true; /* true, false, null */
	}
}

/* Containers nested in `v`: 0 for a scalar, 1 for [] or [1], 2 for [[]]. What jo_too_deep()
 * counts in the text. */
static inline unsigned fz_json_nesting(const json_t *v)
{
	unsigned max = 0, d;
	const char *key;
	json_t *val;
	size_t i;

	if (json_is_object(v)) {
		json_object_foreach((json_t *)v, key, val)
		{
			d = fz_json_nesting(val);
			max = d > max ? d : max;
		}
		return max + 1;
	}
	if (json_is_array(v)) {
		json_array_foreach((json_t *)v, i, val)
		{
			d = fz_json_nesting(val);
			max = d > max ? d : max;
		}
		return max + 1;
	}
	return 0;
}

/* The depth of the deepest value (the root is at 0, its members at 1): jo_dumps() refuses a
 * value deeper than JO_MAX_DEPTH. */
static inline unsigned fz_json_value_depth(const json_t *v)
{
	unsigned max = 0, d;
	const char *key;
	json_t *val;
	size_t i;

	if (json_is_object(v)) {
		json_object_foreach((json_t *)v, key, val)
		{
			d = fz_json_value_depth(val) + 1;
			max = d > max ? d : max;
		}
	} else if (json_is_array(v)) {
		json_array_foreach((json_t *)v, i, val)
		{
			d = fz_json_value_depth(val) + 1;
			max = d > max ? d : max;
		}
	}
	return max;
}

/* Checks one text written by jo_dumps()/jo_dumps_compact(): no raw NUL (sandboxd takes its
 * length with strlen()), valid UTF-8, and it reads back as exactly `want`. */
static inline void fz_check_dump(const char *text, size_t len, const json_t *want, const char *what)
{
	json_error_t jerr;
	json_t *back;

	FZ_CHECK(text, "%s returned NULL", what);
	FZ_CHECK(strlen(text) == len, "%s: raw NUL at %zu of %zu", what, strlen(text), len);
	FZ_CHECK(fz_utf8_valid(text, len), "%s: invalid UTF-8: %s", what, text);
	back = json_loadb(text, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
	FZ_CHECK(back, "%s: does not parse back (%s at %d): %s", what, jerr.text, jerr.position,
		 text);
	FZ_CHECK(json_equal((json_t *)want, back), "%s: parses back to another value: %s", what,
		 text);
	FZ_CHECK(fz_json_same(want, back), "%s: parses back to another value (bits): %s", what,
		 text);
	json_decref(back);
}
