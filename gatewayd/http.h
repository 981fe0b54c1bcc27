/* http.h - the API: routes, validation, answers, one log line per request. */
#pragma once

struct evhttp_request;

/* evhttp's handler for every complete request; `arg` is the struct gw. */
void http_handle(struct evhttp_request *req, void *arg);
