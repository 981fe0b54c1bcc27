/* fuzz_utf8.c - the lossy UTF-8 decoder (proto/utf8.c) that turns a script's captured stdout and
 * stderr, any bytes at all, into the JSON strings of every reply.
 *
 * Checked against a reference written another way (it decides a maximal subpart by the range of
 * scalar values a prefix can still complete to, where utf8.c narrows the next byte's range):
 * the output is that reference's, byte for byte, so it is always valid UTF-8, valid input comes
 * back unchanged, each maximal invalid subpart is one U+FFFD (Python's errors="replace"), and
 * decoding the output again changes nothing. jo_string_lossy() makes the same text a JSON
 * string.
 */
#include "fuzz.h"

#include "jsonout.h"
#include "utf8.h"

/* Can the k bytes at p (a lead byte and k-1 continuation bytes) still begin a well-formed
 * sequence of `len` bytes? Yes when some scalar value in the range they leave open needs
 * exactly `len` bytes and is not a surrogate. */
static bool viable(const uint8_t *p, size_t k, size_t len)
{
	static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
	static const uint8_t lead_mask[5] = {0, 0, 0x1F, 0x0F, 0x07};
	uint32_t lo = p[0] & lead_mask[len], hi;
	size_t i;

	for (i = 1; i < k; i++)
		lo = lo << 6 | (p[i] & 0x3F);
	hi = lo;
	for (; i < len; i++) {
		lo = lo << 6;
		hi = hi << 6 | 0x3F;
	}
	if (lo < min_cp[len])
		lo = min_cp[len];
	if (hi > 0x10FFFF)
		hi = 0x10FFFF;
	return lo <= hi && !(lo >= 0xD800 && hi <= 0xDFFF);
}

static size_t reference(const uint8_t *in, size_t n, uint8_t *out)
{
	size_t i = 0, o = 0, len, k;

	while (i < n) {
		uint8_t c = in[i];

		if (c < 0x80) {
			out[o++] = c;
			i++;
			continue;
		}
		len = (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
		if (!len || !viable(in + i, 1, len)) {
			memcpy(out + o, "\xEF\xBF\xBD", 3);
			o += 3;
			i++;
			continue;
		}
		/* The longest prefix that can still be completed: the maximal subpart. */
		for (k = 1; k < len && i + k < n && (in[i + k] & 0xC0) == 0x80 &&
			    viable(in + i, k + 1, len);
		     k++)
			;
		if (k == len) {
			memcpy(out + o, in + i, len);
			o += len;
		} else {
			memcpy(out + o, "\xEF\xBF\xBD", 3);
			o += 3;
		}
		i += k;
	}
	return o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t n, n2, rn;
	char *out, *again;
	uint8_t *ref;
	json_t *s;

	out = utf8_lossy((const char *)data, size, &n);
	FZ_CHECK(out, "utf8_lossy failed on %zu bytes", size);
	FZ_CHECK(out[n] == 0, "not NUL-terminated");
	FZ_CHECK(n <= 3 * size, "%zu bytes out of %zu", n, size);
	FZ_CHECK(fz_utf8_valid(out, n), "output is not valid UTF-8");
	if (fz_utf8_valid(data, size))
		FZ_CHECK(n == size && !memcmp(out, data, size), "valid input changed");

	ref = malloc(3 * size + 1);
	FZ_CHECK(ref, "out of memory");
	rn = reference(data, size, ref);
	FZ_CHECK(rn == n && !memcmp(out, ref, n), "differs from the reference (%zu vs %zu bytes)",
		 n, rn);
	free(ref);

	again = utf8_lossy(out, n, &n2);
	FZ_CHECK(again && n2 == n && !memcmp(again, out, n), "decoding the output changed it");
	free(again);

	s = jo_string_lossy((const char *)data, size);
	FZ_CHECK(s && json_string_length(s) == n && !memcmp(json_string_value(s), out, n),
		 "jo_string_lossy differs from utf8_lossy");
	json_decref(s);
	free(out);
	return 0;
}
