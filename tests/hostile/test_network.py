"""Network: a job has loopback only, in a namespace of its own. No host service (TCP on any of
the host's addresses, abstract or path Unix sockets, sandboxd's own socket) can be reached, and
raw, packet and netlink sockets are refused."""
import concurrent.futures
import errno
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile

import pytest

from hostile import (HTTP_TIMEOUT, SYSCALL_PROLOGUE, Attacks, killed_by_seccomp, result_of,
                     script, wait_for)

attack = Attacks()

CONNECT = script("""
    import errno, socket
    def attempt(family, addr, kind=socket.SOCK_STREAM):
        s = socket.socket(family, kind)
        s.settimeout(5)
        try:
            s.connect(addr)
            return 'connected'
        except OSError as e:
            return e.errno if e.errno is not None else repr(e)
        finally:
            s.close()
""")


def host_ipv4_addresses():
    """The host's own IPv4 addresses (loopback and every interface's)."""
    out = subprocess.run(["ip", "-4", "-o", "addr", "show"], capture_output=True, text=True,
                         timeout=30).stdout if shutil.which("ip") else ""
    found = set(re.findall(r"inet (\d+\.\d+\.\d+\.\d+)/", out)) | {"127.0.0.1"}
    return sorted(found)


def assert_nothing_accepted(*listeners):
    for s in listeners:
        s.setblocking(False)
        with pytest.raises(BlockingIOError):
            s.accept()


@attack
def host_tcp_services_on_every_address(svc):
    """A host listener on 0.0.0.0: from the job, loopback refuses (the job's own lo) and
    every other host address is unreachable; the listener never sees a connection."""
    listener = socket.create_server(("0.0.0.0", 0))
    port = listener.getsockname()[1]
    addrs = host_ipv4_addresses()
    try:
        a = svc.execute(CONNECT + script("""
            def main():
                return {addr: attempt(socket.AF_INET, (addr, PORT)) for addr in ADDRS}
        """).replace("PORT", str(port)).replace("ADDRS", repr(addrs)))
        got = result_of(a)
        assert got == {addr: errno.ECONNREFUSED if addr.startswith("127.") else errno.ENETUNREACH
                       for addr in addrs}, got
        assert_nothing_accepted(listener)
    finally:
        listener.close()


@attack
def the_gateway_itself_from_inside(svc):
    """A job cannot call the API (or anything else the gateway serves) from inside."""
    a = svc.execute(CONNECT + script(f"""
        def main():
            return attempt(socket.AF_INET, ({svc.gateway.host!r}, {svc.gateway.port}))
    """))
    assert result_of(a) == errno.ECONNREFUSED


@attack
def host_ipv6_loopback_service(svc):
    try:
        listener = socket.create_server(("::1", 0), family=socket.AF_INET6)
    except OSError as e:
        pytest.fail(f"the host has no IPv6 loopback to listen on: {e}")
    port = listener.getsockname()[1]
    try:
        a = svc.execute(CONNECT + script(f"""
            def main():
                return [attempt(socket.AF_INET6, ('::1', {port})),
                        attempt(socket.AF_INET6, ('2001:db8::1', 80))]
        """))
        assert result_of(a) == [errno.ECONNREFUSED, errno.ENETUNREACH]
        assert_nothing_accepted(listener)
    finally:
        listener.close()


@attack
def reach_the_internet(svc):
    """TCP and UDP out, and name resolution: no route, no resolver."""
    a = svc.execute(CONNECT + script("""
        def main():
            out = {'tcp': attempt(socket.AF_INET, ('1.1.1.1', 443))}
            u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                u.sendto(b'x', ('8.8.8.8', 53))
                out['udp'] = 'sent'
            except OSError as e:
                out['udp'] = e.errno
            try:
                socket.getaddrinfo('example.com', 443)
                out['dns'] = 'resolved'
            except socket.gaierror as e:
                out['dns'] = e.errno
            dev = open('/proc/net/dev').readlines()[2:]
            out['interfaces'] = [l.split(':')[0].strip() for l in dev]
            out['routes'] = open('/proc/net/route').readlines()[1:]
            return out
    """))
    got = result_of(a)
    assert got["dns"] in (socket.EAI_NONAME, socket.EAI_AGAIN, socket.EAI_NODATA), got
    del got["dns"]
    assert got == {"tcp": errno.ENETUNREACH, "udp": errno.ENETUNREACH, "interfaces": ["lo"],
                   "routes": []}


@attack
def raw_ip_socket(svc):
    """AF_INET/SOCK_RAW passes the filter's family check; the kernel refuses it (no
    CAP_NET_RAW in the network namespace's owner)."""
    a = svc.execute(script("""
        import socket
        def main():
            try:
                socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
                return 'opened'
            except OSError as e:
                return e.errno
    """))
    assert result_of(a) == errno.EPERM


@attack
def packet_socket(svc):
    killed_by_seccomp(svc.execute(script("""
        import socket
        def main():
            print('before')
            return socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0).fileno()
    """)))


@attack
def netlink_socket(svc):
    killed_by_seccomp(svc.execute(script("""
        import socket
        def main():
            print('before')
            return socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0).fileno()
    """)))


@attack
def exotic_socket_families(svc):
    """AF_ALG (kernel crypto), AF_VSOCK (the hypervisor), AF_BLUETOOTH, AF_KEY, AF_RDS, AF_TIPC,
    AF_XDP: code paths with a history of kernel bugs. Each is killed, in a child of its own."""
    families = {"alg": 38, "vsock": 40, "bluetooth": 31, "key": 15, "rds": 21, "tipc": 30,
                "xdp": 44, "can": 29, "packet": 17, "netlink": 16}
    a = svc.execute(SYSCALL_PROLOGUE + script("""
        def main():
            return {name: in_child(lambda: syscall(41, fam, 5, 0))
                    for name, fam in FAMILIES.items()}
    """).replace("FAMILIES", repr(families)))
    assert result_of(a) == {k: signal.SIGSYS for k in families}


@attack
def host_abstract_unix_socket(svc):
    """Abstract names are scoped by network namespace: the host's is not the job's."""
    name = "\0pyexec-hostile-" + secrets.token_hex(6)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(name)
    listener.listen(4)
    try:
        a = svc.execute(CONNECT + script(f"""
            def main():
                return [attempt(socket.AF_UNIX, {name!r}),
                        attempt(socket.AF_UNIX, {name!r}, socket.SOCK_DGRAM),
                        [l.split()[-1] for l in open('/proc/net/unix').readlines()[1:]
                         if l.split()[-1].startswith('@')]]
        """))
        assert result_of(a) == [errno.ECONNREFUSED, errno.ECONNREFUSED, []]
        assert_nothing_accepted(listener)
    finally:
        listener.close()


@attack
def sandboxd_socket_and_host_unix_sockets(svc):
    """sandboxd's socket by its path (and through /proc/1/root), the default socket path, and
    a world-writable host socket in a world-readable directory: none exists in the jail."""
    d = tempfile.mkdtemp(prefix="pyexec-hostile-")
    os.chmod(d, 0o755)
    path = os.path.join(d, "open.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    os.chmod(path, 0o777)
    listener.listen(4)
    targets = [svc.sandbox.socket, "/proc/1/root" + svc.sandbox.socket,
               "/run/pyexec/sandboxd.sock", path]
    try:
        a = svc.execute(CONNECT + script(f"""
            def main():
                return {{p: attempt(socket.AF_UNIX, p) for p in {targets!r}}}
        """))
        assert result_of(a) == {p: errno.ENOENT for p in targets}
        assert_nothing_accepted(listener)
    finally:
        listener.close()
        shutil.rmtree(d, ignore_errors=True)


@attack
def a_service_in_the_job_is_not_on_the_host(svc):
    """The other way round: a job listening on 127.0.0.1 is invisible from the host's
    loopback. The host waits until the job's namespace shows the socket listening, connects,
    then tells the job (SIGUSR1) to return how many connections it got."""
    # The host holds the port bound but not listening: nothing on the host can take it, and
    # a connection to it is refused; the job listens on the same number in its namespace.
    held = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    held.bind(("127.0.0.1", 0))
    port = held.getsockname()[1]
    src = script(f"""
        import signal, socket
        def main():
            signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1])
            s = socket.create_server(('127.0.0.1', {port}))
            s.setblocking(False)
            woken = signal.sigtimedwait([signal.SIGUSR1], 5) is not None
            try:
                s.accept()
                accepted = 1
            except BlockingIOError:
                accepted = 0
            return {{'woken': woken, 'accepted': accepted}}
    """)
    listen_line = re.compile(r"^\s*\d+: 0100007F:%04X 00000000:0000 0A " % port, re.M)

    def job_listening():
        for pid, *_ in svc.job_procs():
            try:
                with open(f"/proc/{pid}/net/tcp") as f:
                    if listen_line.search(f.read()):
                        return pid
            except OSError:
                pass
        return None

    try:
        with concurrent.futures.ThreadPoolExecutor(1) as ex:
            fut = ex.submit(svc.execute, src)
            pid = wait_for(job_listening, HTTP_TIMEOUT, interval=0.02, what="the job to listen")
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection(("127.0.0.1", port), timeout=5)
            os.kill(pid, signal.SIGUSR1)
            a = fut.result(HTTP_TIMEOUT)
    finally:
        held.close()
    assert result_of(a) == {"woken": True, "accepted": 0}


@pytest.mark.parametrize("case", attack, ids=Attacks.id)
def test_attack(svc, case):
    case(svc)
    svc.assert_intact()
