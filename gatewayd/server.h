/* server.h - the HTTP transport around evhttp: the listening socket, one record per client
 * connection (the connection limit, the whole-request deadline against slowloris, noticing a
 * client that leaves while its job runs), and sending answers. Routes are in http.c. */
#pragma once

#include <stddef.h>

#include "gw.h"

struct evbuffer;
struct evhttp_request;

/* Opens, binds and listens on HOST:PORT (IPv4, or IPv6 in brackets). Run before the privileges
 * go, so a port below 1024 works. Returns a non-blocking, close-on-exec fd, or -errno; `desc`
 * gets the bound address ("127.0.0.1:8080", the real port when PORT was 0). */
int srv_listen_open(const char *hostport, char *desc, size_t desc_len);

/* Creates the evhttp server on `fd` with the configured caps and timeouts; `handler` gets
 * every complete request. Returns 0 or -errno. */
int srv_start(struct gw *gw, int fd, void (*handler)(struct evhttp_request *, void *));
void srv_stop_accepting(struct gw *gw);
void srv_free(struct gw *gw);

/* The connection a request arrived on; the whole-request deadline stops here. NULL only when
 * out of memory. */
struct gw_conn *srv_request_received(struct gw *gw, struct evhttp_request *req);

/* While an answer is being prepared: if the client closes its end, `on_gone(arg)` runs and the
 * connection is closed after it (the request is freed with it). srv_send() stops the watch. */
void srv_watch_peer(struct gw_conn *c, void (*on_gone)(void *), void *arg);

/* A new request id (X-Request-Id, the log line) into buf: 16 random hex digits (24 bytes of
 * buf are enough). */
void srv_request_id(struct gw *gw, char *buf, size_t len);

/* Sends the answer (Content-Type and other headers already set on the request). While
 * draining, adds "Connection: close". `c` may be NULL. */
void srv_send(struct gw *gw, struct gw_conn *c, struct evhttp_request *req, int status,
	      struct evbuffer *body);
