"""One test per jail property, each trying to break it from inside a real job."""
import errno
import json
import os
import signal
import socket
import subprocess
import time

import pytest

from conftest import SECRET_NAME, SECRET_VALUE, free_tcp_listener, script, wait_for

MiB = 1 << 20
SIGSYS_PREFIX = "Script execution error: killed by signal 31 (SIGSYS"


def ok(r):
    assert r["verdict"] == "ok", r
    return json.loads(r["result"])


# ---- reading the host -------------------------------------------------------------------------

def test_host_files_are_not_there(daemon, run):
    r = run(script("""
        import os
        def main():
            out = {}
            for p in ['/etc/shadow', '/etc/gshadow', '/root', '/work', '/home', '/run', '/var',
                      '/sys', '/boot', '/srv', '/mnt', '/media', '/etc/ssh', '/usr/local',
                      '/usr/sbin', '/usr/lib/python3/dist-packages/pytest', %r, %r]:
                try:
                    out[p] = sorted(os.listdir(p)) if os.path.isdir(p) else open(p, 'rb').read().decode()
                except OSError as e:
                    out[p] = e.errno
            out['/'] = sorted(os.listdir('/'))
            out['/etc'] = sorted(os.listdir('/etc'))
            out['/dev'] = sorted(os.listdir('/dev'))
            out['passwd'] = open('/etc/passwd').read()
            return out
    """ % (daemon.dir, daemon.socket)))
    v = ok(r)
    for p in ['/etc/shadow', '/etc/gshadow', '/root', '/work', '/home', '/run', '/var', '/sys',
              '/boot', '/srv', '/mnt', '/media', '/etc/ssh', '/usr/local', '/usr/sbin',
              '/usr/lib/python3/dist-packages/pytest', daemon.dir, daemon.socket]:
        assert v[p] == errno.ENOENT, (p, v[p])
    assert set(v["/"]) <= {"bin", "sbin", "lib", "lib32", "lib64", "libx32", "usr", "etc", "dev",
                           "tmp", "proc", "opt"}, v["/"]
    assert set(v["/etc"]) <= {"passwd", "group", "hostname", "hosts", "resolv.conf",
                              "nsswitch.conf", "alternatives"}, v["/etc"]
    assert set(v["/dev"]) <= {"null", "zero", "full", "random", "urandom", "shm", "fd", "stdin",
                              "stdout", "stderr"}, v["/dev"]
    users = {line.split(":")[0] for line in v["passwd"].splitlines()}
    assert users == {"root", "sandbox", "nobody"}, v["passwd"]


def test_environment_is_the_jobs_own(run):
    """The daemon's environment (with a marker variable) is readable nowhere in the job."""
    r = run(script("""
        import os
        def main():
            def environ(p):
                try:
                    return open(p, 'rb').read().decode('utf-8', 'replace')
                except OSError as e:
                    return 'errno %d' % e.errno
            seen = {'os.environ': dict(os.environ),
                    '/proc/1/environ': environ('/proc/1/environ'),
                    '/proc/self/environ': environ('/proc/self/environ')}
            for pid in os.listdir('/proc'):
                if pid.isdigit():
                    seen['/proc/%s/environ' % pid] = environ('/proc/%s/environ' % pid)
                    seen['/proc/%s/cmdline' % pid] = environ('/proc/%s/cmdline' % pid)
            return seen
    """))
    v = ok(r)
    assert SECRET_VALUE not in json.dumps(v) and SECRET_NAME not in json.dumps(v)
    assert SECRET_VALUE.encode() not in r["stdout"] + r["stderr"]
    env = v["os.environ"]
    assert set(env) <= {"PATH", "HOME", "TMPDIR", "USER", "LOGNAME", "LANG", "LC_ALL", "TZ",
                        "PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED", "OPENBLAS_NUM_THREADS",
                        "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS",
                        "NUMEXPR_MAX_THREADS", "MPLCONFIGDIR", "OPENBLAS_CORETYPE",
                        "OPENBLAS_L2_SIZE"}, sorted(env)
    assert env["HOME"] == "/tmp"
    # pid 1 is the runner itself: its environ is exactly the job's small one.
    pid1 = dict(kv.split("=", 1) for kv in v["/proc/1/environ"].split("\0") if kv)
    assert pid1 == env


def test_host_processes_are_invisible(run):
    r = run(script("""
        import os
        def main():
            return {'pids': sorted(int(p) for p in os.listdir('/proc') if p.isdigit()),
                    'me': os.getpid(), 'ppid': os.getppid(),
                    'cmdline1': open('/proc/1/cmdline').read().split('\\0')}
    """))
    v = ok(r)
    assert v["pids"] == [1]
    assert v["me"] == 1
    assert v["ppid"] == 0  # the daemon is outside the PID namespace
    # pid 1 is the runner: exec'ed by the daemon (cold), or the zygote's clone (warm).
    assert v["cmdline1"][-2].endswith("runner.py") or \
        v["cmdline1"][:-1] == ["/opt/pyexec/pyexec-zygote", "/usr/bin/python3.11"], v["cmdline1"]


# ---- writing --------------------------------------------------------------------------------

def test_root_usr_etc_and_interpreter_are_read_only(run):
    r = run(script("""
        import os
        def attempt(f):
            try:
                f()
                return 'succeeded'
            except OSError as e:
                return e.errno
        def main():
            return {
                'create /': attempt(lambda: open('/pwned', 'w')),
                'mkdir /': attempt(lambda: os.mkdir('/pwned')),
                'create /usr': attempt(lambda: open('/usr/pwned', 'w')),
                'create /usr/lib': attempt(lambda: open('/usr/lib/python3.11/pwned.py', 'w')),
                'append os.py': attempt(lambda: open('/usr/lib/python3.11/os.py', 'a')),
                'create /etc': attempt(lambda: open('/etc/pwned', 'w')),
                'append /etc/passwd': attempt(lambda: open('/etc/passwd', 'a')),
                'write python': attempt(lambda: open('/usr/bin/python3.11', 'r+b')),
                'truncate python': attempt(lambda: os.truncate('/usr/bin/python3.11', 0)),
                'chmod python': attempt(lambda: os.chmod('/usr/bin/python3.11', 0o777)),
                'unlink python': attempt(lambda: os.unlink('/usr/bin/python3.11')),
                'write runner': attempt(lambda: open('/opt/pyexec/runner.py', 'a')),
                'write numpy': attempt(lambda: open('/usr/lib/python3/dist-packages/numpy/__init__.py', 'a')),
                'create /proc': attempt(lambda: open('/proc/pwned', 'w')),
                'write /proc/sys': attempt(lambda: open('/proc/sys/kernel/hostname', 'w').write('x')),
                'write /tmp': attempt(lambda: open('/tmp/fine', 'w').write('x')),
            }
    """))
    v = ok(r)
    denied = (errno.EROFS, errno.EACCES, errno.EPERM)
    for k, e in v.items():
        if k == "write /tmp":
            assert e == "succeeded"
        elif k == "create /proc":
            assert e in denied + (errno.ENOENT,), (k, e)  # procfs has no regular files to make
        else:
            assert e in denied, (k, e)
    for k in ("create /", "create /usr", "create /etc"):
        assert v[k] == errno.EROFS, (k, v[k])


def test_no_sys_and_no_cgroupfs(run):
    r = run(script("""
        import os
        def main():
            types = [l.split(' - ')[1].split()[0] for l in open('/proc/self/mountinfo')]
            return {'sys': os.path.exists('/sys'), 'types': sorted(set(types)),
                    'cgroup': open('/proc/self/cgroup').read()}
    """))
    v = ok(r)
    assert v["sys"] is False
    assert not {"cgroup", "cgroup2", "sysfs", "debugfs", "securityfs", "bpf"} & set(v["types"]), v
    # A cgroup namespace rooted at the job's cgroup: no host cgroup path shows.
    for line in v["cgroup"].splitlines():
        assert line.endswith(":/"), v["cgroup"]


# ---- network ----------------------------------------------------------------------------------

def test_host_loopback_services_are_unreachable(run):
    listener = free_tcp_listener()
    abstract = "\0pyexec-test-%d-%d" % (os.getpid(), time.monotonic_ns())
    unix_listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    unix_listener.bind(abstract)
    unix_listener.listen(4)
    port = listener.getsockname()[1]
    try:
        r = run(script("""
            import errno, socket
            def attempt(family, addr):
                s = socket.socket(family, socket.SOCK_STREAM)
                s.settimeout(5)
                try:
                    s.connect(addr)
                    return 'connected'
                except OSError as e:
                    return e.errno if e.errno is not None else repr(e)
                finally:
                    s.close()
            def main():
                return {'tcp': attempt(socket.AF_INET, ('127.0.0.1', %d)),
                        'tcp6': attempt(socket.AF_INET6, ('::1', %d)),
                        'abstract': attempt(socket.AF_UNIX, %r),
                        'outside': attempt(socket.AF_INET, ('192.0.2.1', 80)),
                        'netdev': [l.split(':')[0].strip() for l in open('/proc/net/dev').readlines()[2:]]}
        """ % (port, port, abstract)))
        v = ok(r)
        assert v["tcp"] == errno.ECONNREFUSED
        assert v["tcp6"] in (errno.ECONNREFUSED, errno.EADDRNOTAVAIL, errno.ENETUNREACH)
        assert v["abstract"] == errno.ECONNREFUSED
        assert v["outside"] == errno.ENETUNREACH
        assert v["netdev"] == ["lo"]
        # And nothing reached the host's listeners.
        for s in (listener, unix_listener):
            s.setblocking(False)
            with pytest.raises(BlockingIOError):
                s.accept()
    finally:
        listener.close()
        unix_listener.close()


def test_daemon_socket_is_not_reachable(daemon, run):
    r = run(script("""
        import os, socket
        def main():
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(%r)
                return 'connected'
            except OSError as e:
                return e.errno
    """ % daemon.socket))
    assert ok(r) == errno.ENOENT


# ---- identity and privileges ------------------------------------------------------------------

def test_identity_capabilities_seccomp(daemon, run):
    r = run(script("""
        import os
        def main():
            st = dict(l.split(':', 1) for l in open('/proc/self/status').read().splitlines())
            st = {k: v.strip() for k, v in st.items()}
            return {'ids': [os.getuid(), os.geteuid(), os.getgid(), os.getegid()],
                    'resuid': list(os.getresuid()), 'groups': os.getgroups(),
                    'caps': {k: st[k] for k in ('CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb')},
                    'seccomp': st['Seccomp'], 'nnp': st['NoNewPrivs'],
                    'uid_map': open('/proc/self/uid_map').read().split(),
                    'gid_map': open('/proc/self/gid_map').read().split(),
                    'setgroups': open('/proc/self/setgroups').read().strip()}
    """))
    v = ok(r)
    assert v["ids"] == [1000, 1000, 1000, 1000]
    assert v["resuid"] == [1000, 1000, 1000]
    assert v["groups"] == []
    assert v["caps"] == {k: "0000000000000000" for k in v["caps"]} and len(v["caps"]) == 5
    assert v["seccomp"] == "2"
    assert v["nnp"] == "1"
    inside, host, count = (int(x) for x in v["uid_map"])
    assert (inside, count) == (1000, 1)
    assert daemon.uid_base <= host < daemon.uid_base + daemon.n_slots
    assert v["gid_map"] == v["uid_map"]
    assert v["setgroups"] == "deny"


def test_hostname_is_sandbox(run):
    r = run(script("""
        import os, socket
        def main():
            return [socket.gethostname(), os.uname().nodename, open('/etc/hostname').read()]
    """))
    assert ok(r) == ["sandbox", "sandbox", "sandbox\n"]


def test_concurrent_jobs_run_as_distinct_host_uids(daemon):
    sleeper = script("""
        import time
        def main():
            time.sleep(4)
            return open('/proc/self/uid_map').read().split()[1]
    """)
    with daemon.client() as c:
        c.submit(1, sleeper)
        c.submit(2, sleeper)
        seen = wait_for(lambda: {p[1] for p in daemon.job_procs()} if
                        len({p[1] for p in daemon.job_procs()}) >= 2 else None,
                        timeout=30, what="two jobs on the host")
        got, _ = c.collect([1, 2])
    hosts = {int(json.loads(got[i][1]["result"])) for i in (1, 2)}
    assert got[1][1]["verdict"] == got[2][1]["verdict"] == "ok"
    assert len(hosts) == 2, hosts
    assert hosts == seen


# ---- processes, deadline, signals -------------------------------------------------------------

def test_children_do_not_outlive_the_deadline(daemon):
    src = script("""
        import os, signal, time
        def main():
            if os.fork() == 0:            # a plain sleeping child
                try:
                    time.sleep(1000)
                finally:
                    os._exit(0)
            pid = os.fork()
            if pid == 0:                  # a daemonised grandchild: setsid, fork, parent exits
                try:
                    os.setsid()
                    if os.fork() == 0:
                        for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
                            signal.signal(s, signal.SIG_IGN)
                        time.sleep(1000)
                finally:
                    os._exit(0)
            os.waitpid(pid, 0)
            time.sleep(1000)
    """)
    assert daemon.job_procs() == []
    with daemon.client() as c:
        c.submit(1, src, timeout_ms=2000)
        # While it runs: the runner, the child and the daemonised grandchild are on the host.
        wait_for(lambda: len(daemon.job_procs()) >= 3, timeout=10, interval=0.02,
                 what="the job's three processes")
        got, _ = c.collect([1])
    r = got[1][1]
    assert r["verdict"] == "timeout", r
    assert r["message"] == "Script execution timed out"
    # The RESULT comes once the whole job is killed: nothing with the job's uids remains.
    assert daemon.job_procs() == []


def test_signalling_the_parent_kills_only_the_job(daemon):
    # Host processes running as the job slots' own uids: the job must not reach them either.
    def as_uid(uid):
        def f():
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
        return f
    sleepers = [subprocess.Popen(["sleep", "300"], preexec_fn=as_uid(daemon.uid_base + i))
                for i in range(daemon.n_slots)]
    try:
        other = daemon.client()
        other.submit(7, "import time\ndef main():\n    time.sleep(3)\n    return 'unharmed'\n")
        r = daemon.run(script("""
            import os, time
            def main():
                kids = []
                for i in range(3):
                    pid = os.fork()
                    if pid == 0:
                        try:
                            time.sleep(100)
                        finally:
                            os._exit(0)
                    kids.append(pid)
                os.kill(-1, 9)
                os.kill(os.getppid(), 9)
                os.kill(1, 9)
                time.sleep(0.2)
                return {'kids': [os.waitpid(p, 0)[1] for p in kids], 'ppid': os.getppid()}
        """))
        # The runner is pid 1 of its namespace: a SIGKILL from inside does not reach it.
        assert ok(r) == {"kids": [signal.SIGKILL] * 3, "ppid": 0}
        got, _ = other.collect([7])
        other.close()
        assert got[7][1]["verdict"] == "ok" and got[7][1]["result"] == '"unharmed"'
        assert all(s.poll() is None for s in sleepers)
    finally:
        for s in sleepers:
            s.kill()
            s.wait()
    assert daemon.healthy()


def test_fork_bomb_hits_the_pids_limit(daemon, run):
    r = run(script("""
        import os, time
        def main():
            n, err = 0, None
            for i in range(1000):
                try:
                    pid = os.fork()
                except OSError as e:
                    err = e.errno
                    break
                if pid == 0:
                    try:
                        time.sleep(100)
                    finally:
                        os._exit(0)
                n += 1
            return {'forked': n, 'errno': err}
    """))
    v = ok(r)
    assert v["errno"] == errno.EAGAIN
    assert 64 <= v["forked"] < 128, v  # the runner plus its children stay under 128 tasks
    assert daemon.job_procs() == []
    assert daemon.healthy()


# ---- memory -----------------------------------------------------------------------------------

def test_one_process_allocating_1gib_is_oom(daemon, run):
    r = run("def main():\n    x = b'\\x01' * (1 << 30)\n    return len(x)\n")
    assert r["verdict"] == "oom", r
    assert r["message"] == "Script exceeded the memory limit (512 MiB)"
    assert r["result"] == ""
    assert 256 * MiB <= r["peak_memory"] <= 520 * MiB, r["peak_memory"]
    assert daemon.job_procs() == []


def test_four_processes_of_200mb_are_oom(daemon, run):
    r = run(script("""
        import os, time
        def main():
            kids = []
            for i in range(4):
                pid = os.fork()
                if pid == 0:
                    try:
                        buf = b'\\x01' * (200 << 20)
                        time.sleep(60)
                    finally:
                        os._exit(0)
                kids.append(pid)
            for pid in kids:
                os.waitpid(pid, 0)
            return 'all four fitted'
    """))
    assert r["verdict"] == "oom", r
    assert r["message"] == "Script exceeded the memory limit (512 MiB)"
    assert daemon.job_procs() == []
    assert daemon.healthy()


def test_memory_limit_can_be_lowered_per_job(run):
    r = run("def main():\n    x = b'\\x01' * (100 << 20)\n    return len(x)\n", memory_mb=64)
    assert r["verdict"] == "oom", r
    assert r["message"] == "Script exceeded the memory limit (64 MiB)"
    r = run("def main():\n    x = b'\\x01' * (100 << 20)\n    return len(x)\n", memory_mb=256)
    assert ok(r) == 100 << 20


# ---- scratch space ----------------------------------------------------------------------------

BIG_FILE = script("""
    import os
    def main():
        chunk = b'\\1' * (1 << 20)
        written, err = 0, None
        fd = os.open(%r, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            while written < (100 << 20):
                written += os.write(fd, chunk)
        except OSError as e:
            err = e.errno
        return {'errno': err, 'size': os.fstat(fd).st_size}
""")

MANY_FILES = script("""
    import os
    def main():
        n, err = 0, None
        try:
            while n < 10000:
                os.close(os.open('%s/f%%d' %% n, os.O_WRONLY | os.O_CREAT, 0o600))
                n += 1
        except OSError as e:
            err = e.errno
        return {'errno': err, 'files': n}
""")


@pytest.mark.parametrize("where", ["/tmp", "/dev/shm"])
def test_one_big_file_stops_at_64_mib(run, where):
    v = ok(run(BIG_FILE % (where + "/big")))
    assert v["errno"] in (errno.EFBIG, errno.ENOSPC), v
    assert 60 * MiB <= v["size"] <= 64 * MiB, v


@pytest.mark.parametrize("where", ["/tmp", "/dev/shm"])
def test_many_small_files_stop_near_4096_inodes(run, where):
    v = ok(run(MANY_FILES % where))
    assert v["errno"] == errno.ENOSPC, v
    assert 4000 <= v["files"] < 4096, v


# ---- seccomp ----------------------------------------------------------------------------------

# (name, x86_64 number, arguments). Each is killed outright by the filter (SIGSYS).
CLONE_NEWUSER, SIGCHLD = 0x10000000, 17
DENIED = [
    ("unshare", 272, [0x10000000]),
    ("mount", 165, [0, 0, 0, 0, 0]),
    ("umount2", 166, [0, 0]),
    ("setns", 308, [0, 0]),
    ("pivot_root", 155, [0, 0]),
    ("chroot", 161, [0]),
    ("open_tree", 428, [-1, 0, 0]),
    ("move_mount", 429, [-1, 0, -1, 0, 0]),
    ("fsopen", 430, [0, 0]),
    ("fsmount", 432, [-1, 0, 0]),
    ("fspick", 433, [-1, 0, 0]),
    ("mount_setattr", 442, [-1, 0, 0, 0, 0]),
    ("keyctl", 250, [0, 0, 0, 0, 0]),
    ("add_key", 248, [0, 0, 0, 0, 0]),
    ("request_key", 249, [0, 0, 0, 0]),
    ("bpf", 321, [0, 0, 0]),
    ("perf_event_open", 298, [0, 0, -1, -1, 0]),
    ("userfaultfd", 323, [0]),
    ("io_uring_setup", 425, [1, 0]),
    ("io_uring_enter", 426, [0, 0, 0, 0, 0, 0]),
    ("io_uring_register", 427, [0, 0, 0, 0]),
    ("ptrace", 101, [0, 0, 0, 0]),
    ("process_vm_readv", 310, [1, 0, 0, 0, 0, 0]),
    ("process_vm_writev", 311, [1, 0, 0, 0, 0, 0]),
    ("pidfd_getfd", 438, [0, 0, 0]),
    ("kcmp", 312, [1, 1, 0, 0, 0]),
    ("open_by_handle_at", 304, [0, 0, 0]),
    ("name_to_handle_at", 303, [0, 0, 0, 0, 0]),
    ("init_module", 175, [0, 0, 0]),
    ("finit_module", 313, [0, 0, 0]),
    ("delete_module", 176, [0, 0]),
    ("kexec_load", 246, [0, 0, 0, 0]),
    ("kexec_file_load", 320, [0, 0, 0, 0, 0]),
    ("reboot", 169, [0, 0, 0, 0]),
    ("swapon", 167, [0, 0]),
    ("syslog", 103, [0, 0, 0]),
    ("acct", 163, [0]),
    ("settimeofday", 164, [0, 0]),
    ("clock_settime", 227, [0, 0]),
    ("adjtimex", 159, [0]),
    ("sethostname", 170, [0, 0]),
    ("iopl", 172, [3]),
    ("ioperm", 173, [0, 1, 1]),
    ("modify_ldt", 154, [0, 0, 0]),
    ("clone CLONE_NEWUSER", 56, [CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0]),
    ("clone CLONE_NEWNET", 56, [0x40000000 | SIGCHLD, 0, 0, 0, 0]),
    ("socket AF_NETLINK", 41, [16, 3, 0]),
    ("socket AF_PACKET", 41, [17, 3, 0]),
    ("socket AF_VSOCK", 41, [40, 1, 0]),
    ("ioctl TIOCSTI", 16, [0, 0x5412, 0]),
    ("personality", 135, [0x0040000]),
    ("x32 getpid", 0x40000000 | 39, []),
]

SYSCALL = script("""
    import ctypes, os
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    def main():
        os.write(1, b'before\\n')
        r = libc.syscall(ctypes.c_long(%d), *[ctypes.c_long(a) for a in %r])
        os.write(1, b'after\\n')
        return [r, ctypes.get_errno()]
""")


@pytest.mark.parametrize("name,nr,args", DENIED, ids=[d[0] for d in DENIED])
def test_denied_syscall_is_killed(run, name, nr, args):
    r = run(SYSCALL % (nr, args))
    assert r["verdict"] == "killed", (name, r["verdict"], r["result"], r["message"])
    assert r["message"].startswith(SIGSYS_PREFIX), r["message"]
    assert r["exit_code"] == 128 + signal.SIGSYS
    assert r["stdout"] == b"before\n"  # it died in that very call


def test_clone3_answers_enosys_and_fork_still_works(run):
    r = run(script("""
        import ctypes, os
        libc = ctypes.CDLL(None, use_errno=True)
        libc.syscall.restype = ctypes.c_long
        def main():
            r = libc.syscall(ctypes.c_long(435), ctypes.c_long(0), ctypes.c_long(0))
            e = ctypes.get_errno()
            pid = os.fork()
            if pid == 0:
                os._exit(7)
            return [r, e, os.waitpid(pid, 0)[1] >> 8]
    """))
    assert ok(r) == [-1, errno.ENOSYS, 7]


# ---- the result cannot be forged -------------------------------------------------------------

def test_printing_a_result_does_not_forge_it(run):
    r = run(script("""
        import os, sys
        def main():
            print('{"result": {"forged": true}, "stdout": ""}')
            payload = b'{"status":"ok","result":{"forged":true}}'
            sys.stdout.buffer.write(b'PXR1' + len(payload).to_bytes(4, 'big') + payload)
            sys.stdout.flush()
            return {"real": 1}
    """))
    assert ok(r) == {"real": 1}
    payload = b'{"status":"ok","result":{"forged":true}}'
    assert r["stdout"] == (b'{"result": {"forged": true}, "stdout": ""}\n' + b"PXR1"
                           + len(payload).to_bytes(4, "big") + payload)


def test_fd1_frame_then_os_exit_is_an_error(run):
    r = run(script("""
        import os
        def main():
            payload = b'{"status":"ok","result":{"forged":true}}'
            os.write(1, b'PXR1' + len(payload).to_bytes(4, 'big') + payload)
            os._exit(0)
    """))
    payload = b'{"status":"ok","result":{"forged":true}}'
    assert r["verdict"] == "error", r
    assert r["message"] == ("Script execution error: the script exited with status 0 before "
                            "main() returned")
    assert r["result"] == ""
    assert r["stdout"] == b"PXR1" + len(payload).to_bytes(4, "big") + payload


def test_writing_to_fd4_cannot_reach_the_result_channel(run):
    r = run("import os\ndef main():\n    os.write(4, b'garbage')\n    return 1\n")
    # The runner moved the channel away from fd 4 before the script ran.
    assert r["verdict"] == "error"
    assert r["message"] == "Script execution error: [Errno 9] Bad file descriptor"


def test_garbage_on_the_result_channel_is_an_error(run):
    r = run(script("""
        import os
        def main():
            chans = [int(f) for f in os.listdir('/proc/self/fd') if int(f) >= 63]
            print(len(chans))
            for fd in chans:
                os.write(fd, b'garbage, not a frame')
            return {"honest": True}
    """))
    assert r["stdout"] == b"1\n"
    assert r["verdict"] == "error", r
    assert r["message"] == "Script execution error: the result channel was corrupted (bad frame header)"
    assert r["result"] == ""


def test_sys_exit_in_main(run):
    r = run("import sys\ndef main():\n    sys.exit(3)\n")
    assert r["verdict"] == "error"
    assert r["message"] == "Script execution error: sys.exit(3) was called before main() returned"


# ---- nothing carries over between jobs --------------------------------------------------------

STATE = """
import os, socket
def state():
    return {'tmp': sorted(os.listdir('/tmp')), 'shm': sorted(os.listdir('/dev/shm')),
            'env': sorted(os.environ), 'fds': sorted(os.listdir('/proc/self/fd')),
            'pids': sorted(p for p in os.listdir('/proc') if p.isdigit()),
            'abstract': sorted(l.split()[-1] for l in open('/proc/net/unix').readlines()[1:]
                               if l.split()[-1].startswith('@'))}
"""


def test_second_job_sees_nothing_of_the_first(daemon):
    first = STATE + script("""
        import time
        def main():
            before = state()
            open('/tmp/x', 'w').write('first job was here')
            open('/dev/shm/y', 'w').write('first job was here')
            os.environ['PYEXEC_LEAK'] = '1'
            keep = os.open('/tmp/x', os.O_RDONLY)
            os.set_inheritable(keep, True)
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.bind('\\0pyexec-leak')
            s.listen(1)
            if os.fork() == 0:
                time.sleep(100)
                os._exit(0)
            return {'before': before, 'after': state()}
    """)
    second = STATE + script("""
        def main():
            now = state()
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect('\\0pyexec-leak')
                reach = 'connected'
            except OSError as e:
                reach = e.errno
            return {'state': now, 'reach': reach,
                    'x': os.path.exists('/tmp/x'), 'y': os.path.exists('/dev/shm/y')}
    """)
    v1 = ok(daemon.run(first))
    assert v1["after"]["tmp"] == ["x"] and v1["after"]["shm"] == ["y"]
    assert "PYEXEC_LEAK" in v1["after"]["env"] and "@pyexec-leak" in v1["after"]["abstract"]
    assert len(v1["after"]["fds"]) == len(v1["before"]["fds"]) + 2  # keep and the socket
    v2 = ok(daemon.run(second))
    assert v2["state"] == v1["before"]
    assert v2["reach"] == errno.ECONNREFUSED
    assert v2["x"] is False and v2["y"] is False


# ---- output -----------------------------------------------------------------------------------

def test_stdout_over_1mib_is_truncated(run):
    r = run(script("""
        import sys
        def main():
            chunk = '0123456789abcdef' * 4096
            for i in range(40):
                sys.stdout.write(chunk)
            return 'done'
    """))
    assert r["verdict"] == "ok" and r["result"] == '"done"'
    assert len(r["stdout"]) == 1048576
    assert r["stdout"] == b"0123456789abcdef" * 65536
    assert r["flags"] == 0x1


def test_stderr_over_64kib_is_truncated(run):
    r = run(script("""
        import sys
        def main():
            for i in range(200):
                sys.stderr.write('e' * 1023 + '\\n')
            print('small')
            return 'done'
    """))
    assert r["verdict"] == "ok" and r["result"] == '"done"'
    assert len(r["stderr"]) == 65536
    assert r["stderr"] == (b"e" * 1023 + b"\n") * 64
    assert r["stdout"] == b"small\n"
    assert r["flags"] == 0x2


def test_print_and_os_write_keep_their_order(run):
    r = run(script("""
        import os, sys
        def main():
            print('a')
            os.write(1, b'b\\n')
            print('c', end='')
            sys.stdout.write('\\n')
            os.write(1, b'd\\n')
            print('e', flush=False)
            os.write(1, b'f\\n')
            return None
    """))
    assert r["verdict"] == "ok" and r["result"] == "null"
    assert r["stdout"] == b"a\nb\nc\nd\ne\nf\n"
