"""A small client of sandboxd's wire protocol (proto/PROTOCOL.md), for the integration tests.

It speaks the same bytes as the C side, independently written, so the tests check the
protocol as documented rather than our C encoder against our C decoder.
"""
import socket
import struct

MAGIC = 0x50584543
VERSION = 1
HDR = struct.Struct(">IHHIIQ")

SUBMIT, CANCEL, PING, RESULT, ERROR, PONG = 1, 2, 3, 16, 17, 18
VERDICTS = ["ok", "no_main", "error", "timeout", "oom", "bad_result", "killed",
            "sandbox_error", "cancelled"]
E_PROTOCOL, E_BUSY, E_INVALID, E_SHUTDOWN, E_NOT_READY, E_INTERNAL = 1, 2, 3, 4, 5, 6


def frame(ftype, job_id, payload=b"", magic=MAGIC, version=VERSION, flags=0, length=None):
    n = len(payload) if length is None else length
    return HDR.pack(magic, version, ftype, n, flags, job_id) + payload


def submit_frame(job_id, script, timeout_ms=0, memory_mb=0):
    if isinstance(script, str):
        script = script.encode()
    return frame(SUBMIT, job_id, struct.pack(">IIII", timeout_ms, memory_mb, 0, len(script)) + script)


def _blob(p, off):
    (n,) = struct.unpack_from(">I", p, off)
    off += 4
    return p[off:off + n], off + n


def parse_result(p):
    verdict, flags, wall, cpu, exit_code, peak = struct.unpack_from(">HHIIIQ", p, 0)
    off = 24
    message, off = _blob(p, off)
    result, off = _blob(p, off)
    out, off = _blob(p, off)
    err, off = _blob(p, off)
    assert off == len(p), "trailing bytes in RESULT"
    return {"verdict": VERDICTS[verdict], "flags": flags, "wall_ms": wall, "cpu_ms": cpu,
            "exit_code": exit_code, "peak_memory": peak, "message": message.decode(),
            "result": result.decode(), "stdout": out, "stderr": err}


def parse_error(p):
    code, _, n = struct.unpack_from(">HHI", p, 0)
    return {"code": code, "message": p[8:8 + n].decode()}


def parse_pong(p):
    ready, cgv, running, queued, max_running, max_queued, n = struct.unpack_from(">HHIIIII", p, 0)
    return {"ready": ready, "cgroup_version": cgv, "running": running, "queued": queued,
            "max_running": max_running, "max_queued": max_queued,
            "reason": p[24:24 + n].decode()}


class Client:
    def __init__(self, path, timeout=120):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def send(self, data):
        self.sock.sendall(data)

    def _recv_exact(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionResetError("EOF")
            buf += chunk
        return buf

    def read_frame(self):
        magic, version, ftype, n, flags, job_id = HDR.unpack(self._recv_exact(HDR.size))
        assert magic == MAGIC and version == VERSION and flags == 0
        payload = self._recv_exact(n) if n else b""
        if ftype == RESULT:
            return ftype, job_id, parse_result(payload)
        if ftype == ERROR:
            return ftype, job_id, parse_error(payload)
        if ftype == PONG:
            return ftype, job_id, parse_pong(payload)
        raise AssertionError(f"unexpected frame type {ftype}")

    def run(self, script, job_id=1, timeout_ms=0, memory_mb=0):
        """Submits one job and returns its RESULT dict (or raises on ERROR)."""
        self.send(submit_frame(job_id, script, timeout_ms, memory_mb))
        ftype, jid, body = self.read_frame()
        assert jid == job_id, (jid, job_id)
        if ftype == ERROR:
            raise RuntimeError(f"sandboxd error {body['code']}: {body['message']}")
        return body

    def ping(self, job_id=0):
        self.send(frame(PING, job_id))
        return self.read_frame()[2]

    # Several jobs in flight on one connection (the gateway's way of using the socket).

    def submit(self, job_id, script, timeout_ms=0, memory_mb=0):
        """Sends a SUBMIT without waiting for its answer."""
        self.send(submit_frame(job_id, script, timeout_ms, memory_mb))

    def cancel(self, job_id):
        self.send(frame(CANCEL, job_id))

    def collect(self, job_ids):
        """Reads frames until every id in job_ids has its one answer.

        Returns {job_id: (frame type, body)} and the ids in the order their answers came.
        A second answer for an id, or an answer for an id not asked for, is an error.
        """
        want = set(job_ids)
        got, order = {}, []
        while want - set(got):
            ftype, jid, body = self.read_frame()
            assert jid in want and jid not in got, ("unexpected answer", ftype, jid, body)
            got[jid] = (ftype, body)
            order.append(jid)
        return got, order

    def expect_eof(self):
        """Asserts the daemon closes the connection without sending anything more."""
        data = self.sock.recv(1)
        assert data == b"", f"expected EOF, got {data!r}"


def run(path, script, **kw):
    with Client(path) as c:
        return c.run(script, **kw)
