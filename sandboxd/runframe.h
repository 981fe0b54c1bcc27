/* runframe.h - the one frame the runner writes on the job's result fd ("PXR1", u32 length,
 * JSON; see proto/PROTOCOL.md). It comes from inside the jail: everything is checked. */
#pragma once

#include <jansson.h>

#include "proto.h"
#include <stdbool.h>
#include <stdio.h>
#include <stddef.h>
#include <stdint.h>

enum rf_status { RF_OK, RF_NO_MAIN, RF_ERROR, RF_BAD_RESULT, RF_EXIT };

struct rf_frame {
	enum rf_status status;
	json_t *result;   /* RF_OK: the value (owned) */
	char message[PROTO_MESSAGE_MAX - 64]; /* RF_ERROR, RF_BAD_RESULT; room for our prefix */
	long long code;   /* RF_EXIT */
};

#define RF_MAGIC "PXR1"
#define RF_MAX_DEPTH 64
#define RF_MAX_VALUES 1000000 /* the runner refuses more itself, with a clear text */

/* Parses buf[0..len): exactly one frame and nothing after it. Returns 0, or -EBADMSG with
 * *why saying what was wrong (for the error text). */
int rf_parse(const uint8_t *buf, size_t len, struct rf_frame *ret, const char **why);
void rf_frame_clear(struct rf_frame *f);
/* buf[0..len) is exactly one whole frame by its header (the runner exits right after it). */
bool rf_complete(const uint8_t *buf, size_t len);
