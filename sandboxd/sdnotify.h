/* sdnotify.h - systemd readiness (Type=notify) without linking libsystemd. */
#pragma once

/* Sends `state` to the NOTIFY_SOCKET path (or @abstract name). Returns 0 or -errno. */
int sd_notify_simple(const char *socket_path, const char *state);
