"""Information leaks: a job sees nothing of the host (environment, processes, kernel data,
hostname, accounts, file descriptors) and nothing of other jobs, running or past."""
import concurrent.futures
import errno
import os
import secrets
import signal
import socket

import pytest

from hostile import (HTTP_TIMEOUT, SECRET_NAME, SECRET_VALUE, SYSCALL_PROLOGUE, Attacks,
                     killed_by_seccomp, result_of, script, syscall_script, wait_for)

attack = Attacks()

JOB_ENV = {"PATH", "HOME", "TMPDIR", "USER", "LOGNAME", "LANG", "LC_ALL", "TZ",
           "PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED", "OPENBLAS_NUM_THREADS",
           "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS", "NUMEXPR_MAX_THREADS",
           "MPLCONFIGDIR", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"}


@attack
def daemon_environment(svc):
    """Both daemons hold SECRET_NAME in their environment: no job sees it, in its own
    environment or any process's /proc/PID/environ or cmdline."""
    a = svc.execute(script("""
        import os
        def read(p):
            try:
                with open(p, 'rb') as f:
                    return f.read().decode('utf-8', 'replace')
            except OSError as e:
                return e.errno
        def main():
            seen = {'env': dict(os.environ)}
            for pid in os.listdir('/proc'):
                if pid.isdigit() or pid in ('self', 'thread-self'):
                    for what in ('environ', 'cmdline'):
                        seen['/proc/%s/%s' % (pid, what)] = read('/proc/%s/%s' % (pid, what))
            return seen
    """), stderr=True)
    got = a.body.get("result") if a.body else None
    assert a.status == 200 and got, a
    assert SECRET_VALUE not in a.text and SECRET_NAME not in a.text
    assert set(got["env"]) <= JOB_ENV, sorted(got["env"])
    assert got["env"]["HOME"] == "/tmp"
    pid1 = dict(kv.split("=", 1) for kv in got["/proc/1/environ"].split("\0") if kv)
    assert pid1 == got["env"]


@attack
def host_processes_by_pid(svc):
    """The daemons' host pids mean nothing in the job's PID namespace; it sees only itself."""
    pids = [svc.sandbox.pid, svc.gateway.pid, 1, os.getpid()]
    a = svc.execute(script("""
        import os
        def main():
            out = {'pids': sorted(int(p) for p in os.listdir('/proc') if p.isdigit()),
                   'me': os.getpid(), 'ppid': os.getppid()}
            for pid in PIDS:
                for what in ('environ', 'root/etc/shadow', 'mem', 'status'):
                    p = '/proc/%d/%s' % (pid, what)
                    try:
                        with open(p, 'rb') as f:
                            out[p] = f.read(64).decode('latin-1')
                    except OSError as e:
                        out[p] = e.errno
            return out
    """).replace("PIDS", repr([p for p in pids if p != 1])))
    got = result_of(a)
    assert got.pop("pids") == [1] and got.pop("me") == 1 and got.pop("ppid") == 0, got
    assert got == {k: errno.ENOENT for k in got}, got


@attack
def kernel_information_in_proc(svc):
    """The sensitive /proc files are masked or absent, and nothing in /proc names the host's
    paths (the daemon's directory, the kernel command line)."""
    host_cmdline = open("/proc/cmdline").read().strip()
    a = svc.execute(script("""
        import os
        def read(p):
            try:
                with open(p, 'rb') as f:
                    return f.read(4096).decode('latin-1')
            except OSError as e:
                return e.errno
        def main():
            out = {p: read(p) for p in ('/proc/kallsyms', '/proc/kcore', '/proc/sched_debug',
                                         '/proc/timer_list', '/proc/keys', '/proc/cmdline',
                                         '/proc/sysrq-trigger', '/proc/kmsg', '/proc/modules',
                                         '/proc/vmallocinfo', '/proc/config.gz')}
            out['cgroup'] = read('/proc/self/cgroup')
            out['mountinfo'] = read('/proc/self/mountinfo')
            out['sys'] = os.path.exists('/sys')
            return out
    """))
    got = result_of(a)
    for p in ("/proc/kallsyms", "/proc/timer_list", "/proc/keys", "/proc/cmdline",
              "/proc/vmallocinfo", "/proc/config.gz"):
        assert got[p] == "", (p, got[p])
    for p in ("/proc/kcore", "/proc/sched_debug", "/proc/sysrq-trigger"):
        assert got[p] == errno.ENOENT, (p, got[p])
    assert got["/proc/kmsg"] == errno.EACCES, got["/proc/kmsg"]
    assert got["/proc/modules"] in ("", errno.ENOENT, errno.EACCES), got["/proc/modules"]
    assert all(line.endswith(":/") for line in got["cgroup"].splitlines()), got["cgroup"]
    assert got["sys"] is False
    assert svc.sandbox.dir not in a.text and "pyexec-gw" not in a.text
    assert host_cmdline not in a.text


@attack
def kernel_log(svc):
    """syslog(SYSLOG_ACTION_READ_ALL): dmesg_restrict aside, the filter kills it."""
    killed_by_seccomp(svc.execute(syscall_script(103, 3, 0, 0)))


@attack
def hostname_and_accounts(svc):
    host = socket.gethostname()
    a = svc.execute(script("""
        import os, pwd, grp, socket
        def main():
            return {'names': [socket.gethostname(), os.uname().nodename,
                              open('/etc/hostname').read(),
                              open('/proc/sys/kernel/hostname').read()],
                    'users': sorted(p.pw_name for p in pwd.getpwall()),
                    'groups': sorted(g.gr_name for g in grp.getgrall()),
                    'me': pwd.getpwuid(os.getuid()).pw_name,
                    'etc': sorted(os.listdir('/etc'))}
    """))
    got = result_of(a)
    assert got["names"] == ["sandbox", "sandbox", "sandbox\n", "sandbox\n"], got
    assert got["users"] == ["nobody", "root", "sandbox"], got
    assert "pyexec" not in got["groups"] and got["me"] == "sandbox", got
    assert set(got["etc"]) <= {"passwd", "group", "hostname", "hosts", "resolv.conf",
                               "nsswitch.conf", "alternatives", "localtime"}, got
    if host not in ("sandbox", "localhost"):
        assert host not in a.text


@attack
def inherited_file_descriptors(svc):
    """No descriptor of the daemon (its socket, other jobs' pipes, the log) reaches the job:
    stdin is /dev/null, 1 and 2 are its output pipes, and the one private result channel."""
    a = svc.execute(script("""
        import os
        def main():
            out = {}
            for f in os.listdir('/proc/self/fd'):  # its own fd is closed again by now
                try:
                    out[f] = os.readlink('/proc/self/fd/' + f).split(':')[0]
                except FileNotFoundError:
                    pass
            return out
    """))
    got = result_of(a)
    assert got == {"0": "/dev/null", "1": "pipe", "2": "pipe", "63": "pipe"}, got


@attack
def side_channels_on_the_shared_files(svc):
    """Every job binds the same host inodes (interpreter, libraries, numpy, pandas): inotify
    on them would show other jobs' imports as they happen, and mincore the page cache they
    warmed. Both calls get EPERM."""
    a = svc.execute(SYSCALL_PROLOGUE + script("""
        def main():
            fd = os.open('/usr/lib/python3.11/os.py', os.O_RDONLY)
            libc.mmap.restype = ctypes.c_void_p
            addr = libc.mmap(None, 4096, 1, 1, fd, 0)  # PROT_READ, MAP_SHARED: a host page
            vec = ctypes.create_string_buffer(1)
            return {'inotify_init1': syscall(294, 0),
                    'mincore': syscall(27, addr, 4096, ctypes.addressof(vec))}
    """))
    assert result_of(a) == {"inotify_init1": [-1, errno.EPERM], "mincore": [-1, errno.EPERM]}


@attack
def job_uid_on_the_host(svc):
    """The job's uid 1000 is one unprivileged host uid of this daemon's slots; gid the same."""
    a = svc.execute(script("""
        def main():
            return [open('/proc/self/uid_map').read().split(),
                    open('/proc/self/gid_map').read().split(),
                    open('/proc/self/setgroups').read().strip()]
    """))
    uid_map, gid_map, setgroups = result_of(a)
    inside, host, count = (int(x) for x in uid_map)
    lo, hi = svc.sandbox.uid_range
    assert (inside, count) == (1000, 1) and lo <= host < hi, uid_map
    assert gid_map == uid_map and setgroups == "deny"


@attack
def nothing_carries_over_to_the_next_job(svc):
    """The first job leaves files, an environment change, an abstract socket and a sleeping
    child; the next job finds exactly the state the first one started with."""
    state = script("""
        import os, socket, time
        def state():
            return {'tmp': sorted(os.listdir('/tmp')), 'shm': sorted(os.listdir('/dev/shm')),
                    'env': sorted(os.environ),
                    'pids': sorted(p for p in os.listdir('/proc') if p.isdigit()),
                    'abstract': sorted(l.split()[-1] for l in open('/proc/net/unix').readlines()[1:]
                                       if l.split()[-1].startswith('@'))}
    """)
    first = result_of(svc.execute(state + script("""
        def main():
            before = state()
            open('/tmp/x', 'w').write('first job')
            open('/dev/shm/y', 'w').write('first job')
            os.environ['PYEXEC_LEAK'] = '1'
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.bind('\\0pyexec-leak')
            s.listen(1)
            if os.fork() == 0:
                time.sleep(100)
                os._exit(0)
            return {'before': before, 'after': state()}
    """)))
    assert first["after"]["tmp"] == ["x"] and first["after"]["abstract"] == ["@pyexec-leak"]
    second = result_of(svc.execute(state + script("""
        def main():
            return state()
    """)))
    assert second == first["before"]


# ---- two jobs at once -------------------------------------------------------------------------

OWNER = script("""
    import os, signal, socket, time
    MARK = MARK_VALUE
    def main():
        signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1])
        keep = (MARK * 1000).encode()              # the secret in memory
        os.environ['OWNER_MARK'] = MARK            # in its environment (of children)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind('\\0' + MARK)
        s.listen(4)
        if os.fork() == 0:                         # a process with the secret in its cmdline
            os.execv('/usr/bin/python3.11', ['python3', '-c', 'import time; time.sleep(30)', MARK])
        with open('/dev/shm/' + MARK, 'w') as f:
            f.write(MARK)
        with open('/tmp/secret', 'w') as f:        # last: the host waits for this file
            f.write(MARK)
        woken = signal.sigtimedwait([signal.SIGUSR1], 5) is not None
        s.setblocking(False)
        try:
            s.accept()
            accepted = 1
        except BlockingIOError:
            accepted = 0
        return {'woken': woken, 'tmp': sorted(os.listdir('/tmp')),
                'secret': open('/tmp/secret').read() == MARK, 'accepted': accepted,
                'uid': open('/proc/self/uid_map').read().split()[1]}
""")

SNOOP = script("""
    import os, socket
    MARK = MARK_VALUE
    def read(p):
        try:
            with open(p, 'rb') as f:
                return f.read().decode('latin-1')
        except OSError as e:
            return 'errno %d' % e.errno
    def main():
        seen = []
        for d in ('/tmp', '/dev/shm'):
            seen += os.listdir(d)
        pids = sorted(int(p) for p in os.listdir('/proc') if p.isdigit())
        for pid in pids:
            for what in ('environ', 'cmdline', 'maps', 'status'):
                seen.append(read('/proc/%d/%s' % (pid, what)))
        seen.append(read('/proc/net/unix'))
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect('\\0' + MARK)
            reach = 'connected'
        except OSError as e:
            reach = e.errno
        try:
            os.kill(-1, 9)                          # everything it may signal: nothing
            killed = 'signalled something'
        except OSError as e:
            killed = e.errno
        return {'found': any(MARK in x for x in seen), 'pids': pids, 'reach': reach,
                'secret': read('/tmp/secret'), 'kill': killed,
                'uid': open('/proc/self/uid_map').read().split()[1]}
""")


@attack
def two_jobs_at_once(svc):
    """The owner job keeps a secret in /tmp, /dev/shm, its memory, a child's command line and
    environment and an abstract socket, and waits. While it runs, a second job looks for the
    secret everywhere it can read, connects to the socket and kill(-1)s. It finds nothing, and
    the owner, woken by the host afterwards, still has all its state, unharmed."""
    mark = "owner-" + secrets.token_hex(8)
    owner_src = OWNER.replace("MARK_VALUE", repr(mark))
    snoop_src = SNOOP.replace("MARK_VALUE", repr(mark))

    def owner_ready():
        for pid, *_ in svc.job_procs():
            try:
                with open(f"/proc/{pid}/root/tmp/secret") as f:
                    if f.read() == mark:
                        return pid
            except OSError:
                pass
        return None

    with concurrent.futures.ThreadPoolExecutor(1) as ex:
        fut = ex.submit(svc.execute, owner_src)
        owner_pid = wait_for(owner_ready, HTTP_TIMEOUT, interval=0.02, what="the owner job")
        snoop = svc.execute(snoop_src)
        still_running = owner_pid in [p for p, *_ in svc.job_procs()]
        os.kill(owner_pid, signal.SIGUSR1)
        owner = fut.result(HTTP_TIMEOUT)
    got = result_of(snoop)
    assert got["found"] is False, got
    assert got["pids"] == [1] and got["reach"] == errno.ECONNREFUSED, got
    assert got["secret"] == "errno %d" % errno.ENOENT and got["kill"] == errno.ESRCH, got
    assert still_running, "the owner job had ended before the snooper finished"
    mine = result_of(owner)
    assert mine == {"woken": True, "tmp": ["secret"], "secret": True, "accepted": 0,
                    "uid": mine["uid"]}, mine
    assert mine["uid"] != got["uid"], (mine, got)  # each slot its own host uid
    assert mark not in snoop.text


@pytest.mark.parametrize("case", attack, ids=Attacks.id)
def test_attack(svc, case):
    case(svc)
    svc.assert_intact()
