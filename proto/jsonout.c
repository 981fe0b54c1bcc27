/* jsonout.c - see jsonout.h. */
#include "jsonout.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "utf8.h"

struct jo_buf {
	char *data;
	size_t len, cap;
	bool compact; /* "," and ":" without spaces */
};

static int jo_put(struct jo_buf *b, const char *s, size_t n)
{
	if (n > SIZE_MAX - b->len - 1)
		return -ENOMEM;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		char *p;

		while (cap < b->len + n + 1)
			cap = cap > SIZE_MAX / 2 ? SIZE_MAX : cap * 2;
		p = realloc(b->data, cap);
		if (!p)
			return -ENOMEM;
		b->data = p;
		b->cap = cap;
	}
	memcpy(b->data + b->len, s, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

static int jo_puts(struct jo_buf *b, const char *s)
{
	return jo_put(b, s, strlen(s));
}

/* Escapes exactly what Python's json.dumps(ensure_ascii=False) escapes: the quote, the
 * backslash and the C0 controls. Everything else, U+007F and non-ASCII included, is copied. */
static int jo_string(struct jo_buf *b, const char *s, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	size_t i, run = 0;
	int r;

	if ((r = jo_put(b, "\"", 1)) < 0)
		return r;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		char esc[7];
		size_t n = 2;

		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		if ((r = jo_put(b, s + run, i - run)) < 0)
			return r;
		run = i + 1;
		esc[0] = '\\';
		switch (c) {
		case '"':
			esc[1] = '"';
			break;
		case '\\':
			esc[1] = '\\';
			break;
		case '\n':
			esc[1] = 'n';
			break;
		case '\r':
			esc[1] = 'r';
			break;
		case '\t':
			esc[1] = 't';
			break;
		case '\b':
			esc[1] = 'b';
			break;
		case '\f':
			esc[1] = 'f';
			break;
		default:
			memcpy(esc + 1, "u00", 3);
			esc[4] = hex[c >> 4];
			esc[5] = hex[c & 0xf];
			n = 6;
		}
		if ((r = jo_put(b, esc, n)) < 0)
			return r;
	}
	if ((r = jo_put(b, s + run, len - run)) < 0)
		return r;
	return jo_put(b, "\"", 1);
}

int jo_format_real(double d, char *buf, size_t size)
{
	char tmp[40], digits[24];
	int p, exp10, nd = 0, n;
	const char *c;
	char *o = buf;

	if (!isfinite(d))
		return -EDOM;
	if (size < 32) /* "-1.2345678901234567e-308" and friends fit with room to spare */
		return -ENOBUFS;
	/* The fewest significant digits that read back as the same double: what repr() does. */
	for (p = 1; p <= 17; p++) {
		snprintf(tmp, sizeof(tmp), "%.*e", p - 1, d);
		if (strtod(tmp, NULL) == d)
			break;
	}
	/* tmp is [-]D[.DDD]e(+|-)XX: collect the digits and the decimal exponent. */
	c = tmp;
	if (*c == '-')
		*o++ = *c++;
	for (; *c != 'e'; c++)
		if (*c >= '0' && *c <= '9')
			digits[nd++] = *c;
	exp10 = atoi(c + 1);
	while (nd > 1 && digits[nd - 1] == '0')
		nd--;

	if (exp10 < -4 || exp10 >= 16) {
		/* Python's repr switches to exponent notation here: 1e-05, 1e+16, 1.5e+300. */
		*o++ = digits[0];
		if (nd > 1) {
			*o++ = '.';
			memcpy(o, digits + 1, (size_t)nd - 1);
			o += nd - 1;
		}
		n = snprintf(o, size - (size_t)(o - buf), "e%c%02d", exp10 < 0 ? '-' : '+',
			     exp10 < 0 ? -exp10 : exp10);
		o += n;
	} else if (exp10 < 0) {
		/* 0.0001 .. 0.999...: leading zeros after the point. */
		*o++ = '0';
		*o++ = '.';
		for (int z = -1; z > exp10; z--)
			*o++ = '0';
		memcpy(o, digits, (size_t)nd);
		o += nd;
	} else {
		/* Integral part padded with zeros, then the fraction, or ".0" so the value stays
		 * a float when read back (3.0, not 3). */
		for (int i = 0; i <= exp10; i++)
			*o++ = i < nd ? digits[i] : '0';
		*o++ = '.';
		if (nd > exp10 + 1) {
			memcpy(o, digits + exp10 + 1, (size_t)(nd - exp10 - 1));
			o += nd - exp10 - 1;
		} else {
			*o++ = '0';
		}
	}
	*o = '\0';
	return (int)(o - buf);
}

static int jo_value(struct jo_buf *b, const json_t *v, unsigned depth)
{
	char num[48];
	int r, n;

	if (depth > JO_MAX_DEPTH)
		return -ELOOP;
	switch (json_typeof(v)) {
	case JSON_OBJECT: {
		const char *key;
		json_t *val;
		bool first = true;

		if ((r = jo_put(b, "{", 1)) < 0)
			return r;
		/* jansson keeps insertion order, which is the order the keys were parsed in:
		 * the order main() built its dict in. */
		json_object_foreach((json_t *)v, key, val)
		{
			if (!first && (r = jo_put(b, ", ", b->compact ? 1 : 2)) < 0)
				return r;
			first = false;
			if ((r = jo_string(b, key, strlen(key))) < 0 ||
			    (r = jo_put(b, ": ", b->compact ? 1 : 2)) < 0 ||
			    (r = jo_value(b, val, depth + 1)) < 0)
				return r;
		}
		return jo_put(b, "}", 1);
	}
	case JSON_ARRAY: {
		size_t i;
		json_t *val;

		if ((r = jo_put(b, "[", 1)) < 0)
			return r;
		json_array_foreach((json_t *)v, i, val)
		{
			if (i > 0 && (r = jo_put(b, ", ", b->compact ? 1 : 2)) < 0)
				return r;
			if ((r = jo_value(b, val, depth + 1)) < 0)
				return r;
		}
		return jo_put(b, "]", 1);
	}
	case JSON_STRING:
		/* With the length: a Python string may hold U+0000 (parsed with JSON_ALLOW_NUL). */
		return jo_string(b, json_string_value(v), json_string_length(v));
	case JSON_INTEGER:
		n = snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		return jo_put(b, num, (size_t)n);
	case JSON_REAL:
		n = jo_format_real(json_real_value(v), num, sizeof(num));
		if (n < 0)
			return n;
		return jo_put(b, num, (size_t)n);
	case JSON_TRUE:
		return jo_puts(b, "true");
	case JSON_FALSE:
		return jo_puts(b, "false");
	case JSON_NULL:
		return jo_puts(b, "null");
	}
	return -EINVAL;
}

static char *jo_dump(const json_t *v, size_t *ret_len, bool compact)
{
	_cleanup_free_ char *data = NULL;
	struct jo_buf b = {.compact = compact};
	int r;

	if (!v)
		return NULL;
	r = jo_value(&b, v, 0);
	data = b.data;
	if (r < 0)
		return NULL;
	if (ret_len)
		*ret_len = b.len;
	return steal_pointer(&data);
}

char *jo_dumps(const json_t *v, size_t *ret_len)
{
	return jo_dump(v, ret_len, false);
}

char *jo_dumps_compact(const json_t *v, size_t *ret_len)
{
	return jo_dump(v, ret_len, true);
}

json_t *jo_string_lossy(const char *s, size_t len)
{
	_cleanup_free_ char *clean = NULL;
	size_t n;

	clean = utf8_lossy(s, len, &n);
	if (!clean)
		return NULL;
	return json_stringn(clean, n);
}

bool jo_too_deep(const char *text, size_t len, unsigned max_depth)
{
	unsigned depth = 0;
	bool in_string = false;
	size_t i;

	for (i = 0; i < len; i++) {
		char c = text[i];

		if (in_string) {
			if (c == '\\')
				i++; /* the escaped character cannot end the string */
			else if (c == '"')
				in_string = false;
			continue;
		}
		switch (c) {
		case '"':
			in_string = true;
			break;
		case '[':
		case '{':
			if (++depth > max_depth)
				return true;
			break;
		case ']':
		case '}':
			if (depth > 0)
				depth--;
			break;
		}
	}
	return false;
}
