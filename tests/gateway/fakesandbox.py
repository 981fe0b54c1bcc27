"""A scripted stand-in for sandboxd, speaking the wire protocol (proto/PROTOCOL.md) with bytes
written here by hand, so the gateway's handling of answers a healthy sandboxd never gives
(sandbox_error, refusals, malformed frames, silence) can be tested.

The socket lives like sandboxd's: a directory 0750 root:pyexec and a socket 0660 root:pyexec,
so the gateway, running as pyexec, can connect.
"""
import grp
import os
import shutil
import socket
import struct
import tempfile
import threading

import pxclient
from pxclient import CANCEL, ERROR, HDR, MAGIC, PING, PONG, RESULT, SUBMIT, VERSION

VERDICT = {name: i for i, name in enumerate(pxclient.VERDICTS)}


def _blob(b):
    return struct.pack(">I", len(b)) + b


def result_frame(job_id, verdict="ok", result=b"", message=b"", stdout=b"", stderr=b"",
                 flags=0, wall_ms=5, cpu_ms=3, exit_code=0, peak=1 << 20):
    if isinstance(result, str):
        result = result.encode()
    if isinstance(message, str):
        message = message.encode()
    payload = struct.pack(">HHIIIQ", VERDICT[verdict], flags, wall_ms, cpu_ms, exit_code, peak)
    payload += _blob(message) + _blob(result) + _blob(stdout) + _blob(stderr)
    return pxclient.frame(RESULT, job_id, payload)


def error_frame(job_id, code, message=b""):
    if isinstance(message, str):
        message = message.encode()
    return pxclient.frame(ERROR, job_id, struct.pack(">HHI", code, 0, len(message)) + message)


def pong_frame(job_id, ready=1, reason=b"", running=0, queued=0, max_running=2, max_queued=8):
    if isinstance(reason, str):
        reason = reason.encode()
    return pxclient.frame(PONG, job_id, struct.pack(">HHIIIII", ready, 2, running, queued,
                                                    max_running, max_queued, len(reason)) + reason)


class Conn:
    def __init__(self, sock):
        self.sock = sock
        self.lock = threading.Lock()

    def send(self, data):
        with self.lock:
            try:
                self.sock.sendall(data)
            except OSError:
                pass

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


class FakeSandbox:
    """on_submit(conn, job_id, script_bytes, timeout_ms, memory_mb) decides each job's answer;
    PINGs get a ready PONG unless on_ping is set."""

    def __init__(self, on_submit, on_ping=None, close_at_once=False):
        self.on_submit = on_submit
        self.on_ping = on_ping
        self.close_at_once = close_at_once  # as sandboxd does with a peer it does not serve
        self.dir = tempfile.mkdtemp(prefix="pyexec-fake-", dir="/run")
        os.chmod(self.dir, 0o755)
        sockdir = os.path.join(self.dir, "sock")
        os.mkdir(sockdir, 0o750)
        gid = grp.getgrnam("pyexec").gr_gid
        os.chown(sockdir, 0, gid)
        self.socket = os.path.join(sockdir, "sandboxd.sock")
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(self.socket)
        os.chown(self.socket, 0, gid)
        os.chmod(self.socket, 0o660)
        self.listener.listen(8)
        self.conns = []
        self.cancels = []
        self.accepted = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                s, _ = self.listener.accept()
            except OSError:
                return
            c = Conn(s)
            self.accepted += 1
            if self.close_at_once:
                c.close()
                continue
            self.conns.append(c)
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _recv_exact(self, s, n):
        buf = b""
        while len(buf) < n:
            chunk = s.recv(n - len(buf))
            if not chunk:
                raise EOFError
            buf += chunk
        return buf

    def _serve(self, c):
        try:
            while True:
                magic, version, ftype, length, flags, job_id = HDR.unpack(
                    self._recv_exact(c.sock, HDR.size))
                assert magic == MAGIC and version == VERSION and flags == 0
                payload = self._recv_exact(c.sock, length) if length else b""
                if ftype == SUBMIT:
                    timeout_ms, memory_mb, _, n = struct.unpack_from(">IIII", payload, 0)
                    self.on_submit(c, job_id, payload[16:16 + n], timeout_ms, memory_mb)
                elif ftype == PING:
                    if self.on_ping:
                        self.on_ping(c, job_id)
                    else:
                        c.send(pong_frame(job_id))
                elif ftype == CANCEL:
                    self.cancels.append(job_id)
        except (EOFError, OSError):
            pass

    def drop_all(self):
        for c in list(self.conns):
            c.close()

    def cleanup(self):
        self.listener.close()
        self.drop_all()
        shutil.rmtree(self.dir, ignore_errors=True)
