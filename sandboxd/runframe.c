/* runframe.c - see runframe.h. */
#include "runframe.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

/* jansson has no depth option of its own below 2048: count brackets outside strings first. */
static bool depth_ok(const char *s, size_t len, int max)
{
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
			if (++depth > max)
				return false;
		} else if (c == ']' || c == '}') {
			depth--;
		}
	}
	return true;
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
	*why = "result nested too deeply";
	if (!depth_ok((const char *)buf + 8, n, RF_MAX_DEPTH + 2))
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
		ret->status = !strcmp(status, "error") ? RF_ERROR : RF_BAD_RESULT;
		snprintf(ret->message, sizeof(ret->message), "%s",
			 json_string_value(json_object_get(root, "message")));
	} else if (!strcmp(status, "exit") && json_object_size(root) == 2 &&
		   json_is_integer(json_object_get(root, "code"))) {
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
