/* fuzz_jsonout.c - the one JSON writer (proto/jsonout.c) behind every body pyexec shows and every
 * result sandboxd re-encodes, and its depth guard jo_too_deep().
 *
 * The input is parsed by jansson as the gateway parses a result (JSON_DECODE_ANY |
 * JSON_ALLOW_NUL). For a value it accepts: jo_dumps() and jo_dumps_compact() succeed exactly
 * when no value is deeper than JO_MAX_DEPTH, write no raw NUL and valid UTF-8, and read back as
 * the same value bit for bit (reals included: -0.0 stays -0.0, 0.1 stays 0.1); writing what was
 * read back gives the same bytes; the compact text is the spaced one without the spaces after
 * separators; jo_too_deep() answers exactly "nested deeper than d".
 *
 * jo_format_real() also runs on the input's first 64 bytes taken as doubles: bit patterns a
 * parser rarely produces (subnormals, the extremes, NaNs). Finite ones must read back exactly,
 * in the shortest form, in a buffer of exactly the documented minimum.
 */
#include "fuzz.h"

#include <errno.h>
#include <math.h>

#include "jsonout.h"

#define REAL_BUF 32 /* jo_format_real()'s documented minimum */

static void check_real(double d)
{
	char *buf = malloc(REAL_BUF); /* on the heap, so ASan sees one byte too many */
	char tmp[40];
	double back;
	char *end;
	int n;

	FZ_CHECK(buf, "out of memory");
	n = jo_format_real(d, buf, REAL_BUF);
	if (!isfinite(d)) {
		FZ_CHECK(n == -EDOM, "%d for a non-finite value", n);
		free(buf);
		return;
	}
	FZ_CHECK(n > 0 && n < REAL_BUF && (size_t)n == strlen(buf), "length %d", n);
	back = strtod(buf, &end);
	FZ_CHECK(*end == 0 && !memcmp(&back, &d, sizeof(d)), "%s reads back as %.17g, not %.17g",
		 buf, back, d);
	FZ_CHECK(strchr(buf, '.') || strchr(buf, 'e'), "%s would read back as an integer", buf);
	/* Shortest: with one significant digit less it would not read back. The significant
	 * digits are the mantissa's without the leading and trailing zeros (the shortest form
	 * never needs a trailing zero, so none is lost by stripping them). */
	{
		char digits[40];
		int nd = 0, first = 0;

		for (const char *c = buf; *c && *c != 'e'; c++)
			if (*c >= '0' && *c <= '9')
				digits[nd++] = *c;
		while (first < nd && digits[first] == '0')
			first++;
		while (nd > first && digits[nd - 1] == '0')
			nd--;
		if (nd - first > 1) {
			snprintf(tmp, sizeof(tmp), "%.*e", nd - first - 2, d);
			FZ_CHECK(strtod(tmp, NULL) != d,
				 "%s is not the shortest: %s reads back too", buf, tmp);
		}
	}
	free(buf);
}

static void check_reals_in(const json_t *v)
{
	const char *key;
	json_t *val;
	size_t i;

	if (json_is_real(v))
		check_real(json_real_value(v));
	else if (json_is_object(v))
		json_object_foreach((json_t *)v, key, val) check_reals_in(val);
	else if (json_is_array(v))
		json_array_foreach((json_t *)v, i, val) check_reals_in(val);
}

/* The compact text is the spaced text less the space after each separator outside strings. */
static void check_compact(const char *spaced, size_t slen, const char *compact, size_t clen)
{
	bool in_str = false;
	size_t i, j = 0;

	for (i = 0; i < slen; i++) {
		char c = spaced[i];

		FZ_CHECK(j < clen && compact[j] == c, "compact text differs at %zu", j);
		j++;
		if (in_str) {
			if (c == '\\') {
				FZ_CHECK(i + 1 < slen && j < clen && compact[j] == spaced[i + 1],
					 "compact escape differs");
				i++;
				j++;
			} else if (c == '"') {
				in_str = false;
			}
		} else if (c == '"') {
			in_str = true;
		} else if (c == ',' || c == ':') {
			FZ_CHECK(i + 1 < slen && spaced[i + 1] == ' ', "no space after '%c'", c);
			i++;
		}
	}
	FZ_CHECK(j == clen, "compact text is longer");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data;
	size_t len, clen, len2;
	char *out, *compact, *out2;
	json_error_t jerr;
	json_t *v, *back;
	unsigned nest;

	for (size_t i = 0; i + sizeof(double) <= size && i < 8 * sizeof(double);
	     i += sizeof(double)) {
		double d;

		memcpy(&d, data + i, sizeof(d));
		check_real(d);
	}

	v = json_loadb(text, size, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
	if (!v)
		return 0;

	/* The guard must never see less nesting than the parser builds. The text may nest deeper
	 * than the value when a duplicate key replaced a container ({"a": [[]], "a": 1}); without
	 * duplicates the answer is exact. */
	nest = fz_json_nesting(v);
	if (nest > 0)
		FZ_CHECK(jo_too_deep(text, size, nest - 1), "nested %u, not too deep for %u", nest,
			 nest - 1);
	back = json_loadb(text, size, JSON_DECODE_ANY | JSON_ALLOW_NUL | JSON_REJECT_DUPLICATES,
			  &jerr);
	if (back)
		FZ_CHECK(!jo_too_deep(text, size, nest), "nested %u, too deep for %u", nest, nest);
	json_decref(back);
	check_reals_in(v);

	out = jo_dumps(v, &len);
	compact = jo_dumps_compact(v, &clen);
	if (fz_json_value_depth(v) > JO_MAX_DEPTH) {
		FZ_CHECK(!out && !compact, "wrote a value %u deep", fz_json_value_depth(v));
		json_decref(v);
		return 0;
	}
	fz_check_dump(out, len, v, "jo_dumps");
	fz_check_dump(compact, clen, v, "jo_dumps_compact");
	check_compact(out, len, compact, clen);

	/* Writing what was read back gives the same bytes: one value, one text. */
	back = json_loadb(out, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
	out2 = jo_dumps(back, &len2);
	FZ_CHECK(out2 && len2 == len && !memcmp(out, out2, len), "not a fixed point: %s / %s", out,
		 out2 ? out2 : "(null)");
	free(out2);
	json_decref(back);

	free(out);
	free(compact);
	json_decref(v);
	return 0;
}
