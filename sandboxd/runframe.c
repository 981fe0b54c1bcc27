/* runframe.c - see runframe.h. */
#include "runframe.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

/* Checked before jansson builds anything: its parser has no depth option below 2048, and a
 * tree costs it some 100 bytes per value, so a 16 MiB frame of "[{},{},...]" would cost the
 * root daemon over a gigabyte. Counts brackets and values outside strings. */
static const char *scan_ok(const char *s, size_t len, int max_depth, size_t max_values)
{
	size_t values = 1;
	int depth = 0;
	bool in_str = false;

	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (in_str) {
			if (c == '\\')
				i++;
			else if (c == '"')
				in_str = false;
		} else if (c == '"') {
			in_str = true;
		} else if (c == '[' || c == '{') {
			if (++depth > max_depth)
				return "result nested too deeply";
		} else if (c == ']' || c == '}') {
			depth--;
		} else if (c == ',' || c == ':') {
			if (++values > max_values)
				return "result has too many values";
		}
	}
	return NULL;
}

/* Copies at most size-1 bytes, cut on a UTF-8 character boundary, NUL-terminated. */
static void utf8_copy(char *dst, size_t size, const char *src, size_t len)
{
	if (len >= size) {
		len = size - 1;
		while (len > 0 && ((unsigned char)src[len] & 0xc0) == 0x80)
			len--; /* do not split a multi-byte character */
	}
	memcpy(dst, src, len);
	dst[len] = 0;
	/* An embedded NUL ends the text early, on a boundary too. */
}

bool rf_complete(const uint8_t *buf, size_t len)
{
	if (len < 8 || memcmp(buf, RF_MAGIC, 4))
		return false;
	return ((uint32_t)buf[4] << 24 | (uint32_t)buf[5] << 16 | (uint32_t)buf[6] << 8 | buf[7]) ==
	       len - 8;
}

int rf_parse(const uint8_t *buf, size_t len, struct rf_frame *ret, const char **why)
{
	json_error_t jerr;
	json_t *root, *st;
	const char *status;
	uint32_t n;

	memset(ret, 0, sizeof(*ret));
	*why = "no result frame";
	if (len == 0)
		return -ENODATA;
	*why = "bad frame header";
	if (len < 8 || memcmp(buf, RF_MAGIC, 4))
		return -EBADMSG;
	n = (uint32_t)buf[4] << 24 | (uint32_t)buf[5] << 16 | (uint32_t)buf[6] << 8 | buf[7];
	*why = "frame length does not match";
	if ((size_t)n != len - 8)
		return -EBADMSG;
	*why = scan_ok((const char *)buf + 8, n, RF_MAX_DEPTH + 1, RF_MAX_VALUES);
	if (*why)
		return -EBADMSG;
	*why = "frame is not valid JSON";
	root = json_loadb((const char *)buf + 8, n, JSON_ALLOW_NUL | JSON_REJECT_DUPLICATES, &jerr);
	if (!root)
		return -EBADMSG;
	*why = "frame has no known status";
	st = json_object_get(root, "status");
	status = json_string_value(st);
	if (!json_is_object(root) || !status)
		goto bad;
	if (!strcmp(status, "ok") && json_object_size(root) == 2 && json_object_get(root, "result")) {
		ret->status = RF_OK;
		ret->result = json_incref(json_object_get(root, "result"));
	} else if (!strcmp(status, "no_main") && json_object_size(root) == 1) {
		ret->status = RF_NO_MAIN;
	} else if ((!strcmp(status, "error") || !strcmp(status, "bad_result")) &&
		   json_object_size(root) == 2 &&
		   json_is_string(json_object_get(root, "message"))) {
		const char *m = json_string_value(json_object_get(root, "message"));
		ret->status = !strcmp(status, "error") ? RF_ERROR : RF_BAD_RESULT;
		/* A bad_result text is shown as it is, without our "Script execution error: "
		 * prefix: it must be one of the runner's "Result ..." texts, so a script cannot
		 * make the API say, e.g., "Script execution timed out" in the daemon's words. */
		if (ret->status == RF_BAD_RESULT && strncmp(m, "Result ", 7))
			goto bad;
		utf8_copy(ret->message, sizeof(ret->message), m,
			  json_string_length(json_object_get(root, "message")));
	} else if (!strcmp(status, "exit") && json_object_size(root) == 2 &&
		   json_is_integer(json_object_get(root, "code")) &&
		   json_integer_value(json_object_get(root, "code")) >= INT32_MIN &&
		   json_integer_value(json_object_get(root, "code")) <= INT32_MAX) {
		ret->status = RF_EXIT;
		ret->code = json_integer_value(json_object_get(root, "code"));
	} else {
		goto bad;
	}
	json_decref(root);
	*why = "";
	return 0;
bad:
	json_decref(root);
	return -EBADMSG;
}

void rf_frame_clear(struct rf_frame *f)
{
	json_decref(f->result);
	f->result = NULL;
}
