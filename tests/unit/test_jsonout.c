/* test_jsonout.c - unit tests for the shared JSON writer (proto/jsonout.c) and the lossy UTF-8
 * decoder (proto/utf8.c): the gateway and the CLI print every body through them, so their bytes
 * are pinned here to what Python's json.dumps(v, ensure_ascii=False) prints for the same value
 * (the expected texts below were produced by CPython 3.11).
 */
#include "check.h"
#include "jsonout.h"
#include "utf8.h"
#include "cleanup.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define _cleanup_json_ __attribute__((cleanup(json_decrefp)))

/* repr() of each double, from CPython. */
static const struct {
	double d;
	const char *repr;
} reals[] = {
    {0.0, "0.0"},
    {-0.0, "-0.0"},
    {1.0, "1.0"},
    {-1.0, "-1.0"},
    {3.0, "3.0"},
    {0.1, "0.1"},
    {0.2, "0.2"},
    {0.30000000000000004, "0.30000000000000004"},
    {0.3333333333333333, "0.3333333333333333"},
    {0.6666666666666666, "0.6666666666666666"},
    {1e+16, "1e+16"},
    {1000000000000000.0, "1000000000000000.0"},
    {9999999999999998.0, "9999999999999998.0"},
    {1.2345678901234568e+17, "1.2345678901234568e+17"},
    {0.0001, "0.0001"},
    {1e-05, "1e-05"},
    {0.00012345, "0.00012345"},
    {1.5e+300, "1.5e+300"},
    {-1.5e-300, "-1.5e-300"},
    {5e-324, "5e-324"},
    {2.2250738585072014e-308, "2.2250738585072014e-308"},
    {1.7976931348623157e+308, "1.7976931348623157e+308"},
    {100.0, "100.0"},
    {1e+22, "1e+22"},
    {1e+21, "1e+21"},
    {12345.678, "12345.678"},
    {0.5, "0.5"},
    {2.5, "2.5"},
    {9007199254740992.0, "9007199254740992.0"},
    {9007199254740994.0, "9007199254740994.0"},
    {3.141592653589793, "3.141592653589793"},
    {1e+100, "1e+100"},
    {1.23e-18, "1.23e-18"},
    {-1.6900460060617255e-215, "-1.6900460060617255e-215"},
    {-8.656582097248742e-279, "-8.656582097248742e-279"},
    {-7.327176710725923e+22, "-7.327176710725923e+22"},
    {5.5726831758734234e+51, "5.5726831758734234e+51"},
    {-150450.50724986536, "-150450.50724986536"},
    {3.3720602633004573e-255, "3.3720602633004573e-255"},
    {4.548133948863621e-265, "4.548133948863621e-265"},
    {1.2660360483934641e+32, "1.2660360483934641e+32"},
};

static void test_reals(void)
{
	char buf[64];
	int n;

	for (size_t i = 0; i < ARRAY_SIZE(reals); i++) {
		n = jo_format_real(reals[i].d, buf, sizeof(buf));
		CHECK(n > 0 && strcmp(buf, reals[i].repr) == 0 && (size_t)n == strlen(buf),
		      "real %s -> %s", reals[i].repr, n > 0 ? buf : "(error)");
	}
	CHECK(jo_format_real(NAN, buf, sizeof(buf)) == -EDOM, "NaN is refused");
	CHECK(jo_format_real(INFINITY, buf, sizeof(buf)) == -EDOM, "Infinity is refused");
	CHECK(jo_format_real(1.0, buf, 16) == -ENOBUFS, "a short buffer is refused");
}

/* Random bit patterns: the text reads back as the same double, no shorter precision would, and
 * the form is the one repr() picks for that exponent. */
static void test_reals_random(void)
{
	uint64_t x = 0x9E3779B97F4A7C15ull;
	unsigned bad = 0, n_ok = 0;

	for (int i = 0; i < 200000; i++) {
		char buf[64], shorter[40];
		double d;
		int n, sig = 0;

		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		memcpy(&d, &x, sizeof(d));
		if (!isfinite(d))
			continue;
		n = jo_format_real(d, buf, sizeof(buf));
		if (n <= 0 || strtod(buf, NULL) != d || (!strchr(buf, '.') && !strchr(buf, 'e'))) {
			if (bad++ < 5)
				printf("     %a printed as %s\n", d, buf);
			continue;
		}
		/* Significant digits: the mantissa's digits without leading or trailing zeros
		 * (the zeros of 0.000123 and of 1200.0 are not significant). */
		{
			char dig[40];
			int nd = 0, lead = 0;

			for (const char *c = buf; *c && *c != 'e'; c++)
				if (*c >= '0' && *c <= '9')
					dig[nd++] = *c;
			while (nd > 0 && dig[nd - 1] == '0')
				nd--;
			while (lead < nd && dig[lead] == '0')
				lead++;
			sig = nd - lead;
		}
		if (sig > 1) {
			snprintf(shorter, sizeof(shorter), "%.*e", sig - 2, d);
			if (strtod(shorter, NULL) == d && bad++ < 5)
				printf("     %a: %s is not the shortest (%s)\n", d, buf, shorter);
		}
		n_ok++;
	}
	CHECK(bad == 0 && n_ok > 100000, "%u random doubles round-trip in their shortest form",
	      n_ok);
}

static void test_dumps(void)
{
	/* The input and json.dumps(json.loads(input), ensure_ascii=False) from CPython 3.11. */
	static const char in[] =
	    "{\"z\": 1, \"a\": [true, false, null, 0.1, -3, 3.0, {}, []], \"s\": \"q\\\"b\\\\ "
	    "\\n\\r\\t\\b\\f\\u0001\\u001f\\u007f \\u0000 \xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80 "
	    "\\u2028\", \"nested\": {\"k\": {\"k2\": [1e16, 1e-05]}}}";
	static const char want[] =
	    "{\"z\": 1, \"a\": [true, false, null, 0.1, -3, 3.0, {}, []], \"s\": \"q\\\"b\\\\ "
	    "\\n\\r\\t\\b\\f\\u0001\\u001f\x7f \\u0000 \xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80 "
	    "\xe2\x80\xa8\", \"nested\": {\"k\": {\"k2\": [1e+16, 1e-05]}}}";
	_cleanup_json_ json_t *v = NULL;
	_cleanup_free_ char *out = NULL;
	json_error_t err;
	size_t len = 0;

	v = json_loadb(in, sizeof(in) - 1, JSON_ALLOW_NUL, &err);
	CHECK(v != NULL, "the sample parses (%s)", v ? "" : err.text);
	if (!v)
		return;
	out = jo_dumps(v, &len);
	CHECK(out && strcmp(out, want) == 0 && len == strlen(want),
	      "dumps matches Python's json.dumps byte for byte");
	if (out && strcmp(out, want) != 0)
		printf("     got:  %s\n     want: %s\n", out, want);
}

static void test_dumps_small(void)
{
	static const struct {
		const char *in, *want;
	} cases[] = {
	    {"{}", "{}"},
	    {"[]", "[]"},
	    {"[[[]]]", "[[[]]]"},
	    {"{\"result\": {\"message\": \"Hello, World!\"}, \"stdout\": \"\"}",
	     "{\"result\": {\"message\": \"Hello, World!\"}, \"stdout\": \"\"}"},
	    {"{\"b\":1,\"a\":2}", "{\"b\": 1, \"a\": 2}"}, /* insertion order, not sorted */
	    {"[9223372036854775807, -9223372036854775808]",
	     "[9223372036854775807, -9223372036854775808]"},
	    {"{\"mean\": 3.0, \"data_shape\": [5, 2], \"total_records\": 5}",
	     "{\"mean\": 3.0, \"data_shape\": [5, 2], \"total_records\": 5}"},
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		_cleanup_json_ json_t *v = json_loads(cases[i].in, JSON_DECODE_ANY, NULL);
		_cleanup_free_ char *out = v ? jo_dumps(v, NULL) : NULL;

		CHECK(out && strcmp(out, cases[i].want) == 0, "%s -> %s", cases[i].in,
		      out ? out : "(null)");
	}
	CHECK(jo_dumps(NULL, NULL) == NULL, "NULL has no text");
}

static void test_dumps_depth(void)
{
	_cleanup_json_ json_t *root = json_array();
	json_t *cur = root;

	for (int i = 0; i < JO_MAX_DEPTH + 5; i++) {
		json_t *a = json_array();
		json_array_append_new(cur, a);
		cur = a;
	}
	CHECK(jo_dumps(root, NULL) == NULL, "a value nested over JO_MAX_DEPTH is not written");
}

static void test_too_deep(void)
{
	char buf[200];

	memset(buf, '[', 64);
	memset(buf + 64, ']', 64);
	CHECK(!jo_too_deep(buf, 128, 64), "64 levels are allowed");
	memset(buf, '[', 65);
	memset(buf + 65, ']', 65);
	CHECK(jo_too_deep(buf, 130, 64), "65 levels are refused");
	CHECK(!jo_too_deep("{\"a\": \"[[[[[[\"}", 15, 2), "brackets inside strings do not count");
	CHECK(!jo_too_deep("[\"\\\"[[[[\"]", 11, 1), "an escaped quote does not end the string");
	CHECK(!jo_too_deep("[][][][][]", 10, 1), "siblings do not add up");
	CHECK(jo_too_deep("{\"a\": [{\"b\": []}]}", 19, 3), "objects and arrays both count");
}

static void test_lossy(void)
{
	static const struct {
		const char *in;
		size_t len;
		const char *want;
		size_t want_len;
	} cases[] = {
	    {"plain", 5, "plain", 5},
	    {"a\0b", 3, "a\0b", 3},
	    {"\xc3\xa9", 2, "\xc3\xa9", 2},
	    {"\xff", 1, "\xef\xbf\xbd", 3},
	    {"\xc3", 1, "\xef\xbf\xbd", 3},		    /* truncated */
	    {"\xe2\x82", 2, "\xef\xbf\xbd", 3},		    /* one maximal subpart */
	    {"\xc0\xaf", 2, "\xef\xbf\xbd\xef\xbf\xbd", 6}, /* overlong */
	    {"\xed\xa0\x80", 3, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd", 9}, /* surrogate */
	    {"\xf4\x90\x80\x80", 4, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd",
	     12}, /* over U+10FFFF */
	    {"a\xe2\x82z", 4, "a\xef\xbf\xbdz", 5},
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		size_t n = 0;
		_cleanup_free_ char *out = utf8_lossy(cases[i].in, cases[i].len, &n);

		CHECK(out && n == cases[i].want_len && memcmp(out, cases[i].want, n) == 0,
		      "lossy case %zu", i);
	}
	{
		_cleanup_json_ json_t *s = jo_string_lossy("x\xff\0y", 4);
		_cleanup_free_ char *out = s ? jo_dumps(s, NULL) : NULL;

		CHECK(out && strcmp(out, "\"x\xef\xbf\xbd\\u0000y\"") == 0,
		      "a lossy string keeps its NUL and prints it escaped");
	}
}

int main(void)
{
	test_reals();
	test_reals_random();
	test_dumps();
	test_dumps_small();
	test_dumps_depth();
	test_too_deep();
	test_lossy();
	return check_summary();
}
