/* server.h - sandboxd's Unix socket and its clients. */
#pragma once

#include "sbx.h"

/* Creates `dir` if needed and, unless it is a shared sticky directory, makes it 0750
 * root:gateway group. */
int srv_prepare_dir(struct sbx *s, const char *dir);
/* Creates the socket (0660, root:gateway group) in a 0750 directory and starts accepting. */
int srv_listen(struct sbx *s);
/* Stops accepting and removes the socket path. */
void srv_stop_listening(struct sbx *s);
/* Drops every client (their jobs are killed). */
void srv_close_all(struct sbx *s);
