/* utf8.c - see utf8.h. */
#include "utf8.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

char *utf8_lossy(const char *s, size_t len, size_t *ret_len)
{
	static const char fffd[] = "\xEF\xBF\xBD";
	const uint8_t *in = (const uint8_t *)s;
	size_t i = 0, j, o = 0;
	char *out;

	/* Worst case: every byte becomes a 3-byte U+FFFD. */
	if (len > (SIZE_MAX - 1) / 3)
		return NULL;
	out = malloc(len * 3 + 1);
	if (!out)
		return NULL;
	while (i < len) {
		uint8_t c = in[i], lo = 0x80, hi = 0xBF;
		unsigned need, k;

		if (c < 0x80) {
			out[o++] = (char)c;
			i++;
			continue;
		}
		/* The second byte's range excludes overlongs (E0, F0), surrogates (ED) and code
		 * points above U+10FFFF (F4). */
		if (c >= 0xC2 && c <= 0xDF) {
			need = 1;
		} else if (c >= 0xE0 && c <= 0xEF) {
			need = 2;
			if (c == 0xE0)
				lo = 0xA0;
			else if (c == 0xED)
				hi = 0x9F;
		} else if (c >= 0xF0 && c <= 0xF4) {
			need = 3;
			if (c == 0xF0)
				lo = 0x90;
			else if (c == 0xF4)
				hi = 0x8F;
		} else {
			memcpy(out + o, fffd, 3);
			o += 3;
			i++;
			continue;
		}
		for (j = i + 1, k = 0; k < need && j < len; j++, k++) {
			if (in[j] < lo || in[j] > hi)
				break;
			lo = 0x80;
			hi = 0xBF;
		}
		if (k == need) {
			memcpy(out + o, in + i, j - i);
			o += j - i;
		} else {
			memcpy(out + o, fffd, 3);
			o += 3;
		}
		i = j;
	}
	out[o] = '\0';
	*ret_len = o;
	return out;
}
