"""Privilege: the job is uid 1000 with no capabilities, and every way up (setuid calls and
binaries, new namespaces, mounts, ptrace, the kernel's keyrings, BPF and io_uring) is denied or
kills the job."""
import ast
import errno
import signal

import pytest

from hostile import (SIGSYS, SYSCALL_PROLOGUE, Attacks, killed_by_seccomp, result_of, script,
                     syscall_script)

attack = Attacks()

CLONE_NEW = {"user": 0x10000000, "mnt": 0x00020000, "pid": 0x20000000, "net": 0x40000000,
             "ipc": 0x08000000, "uts": 0x04000000, "cgroup": 0x02000000}


@attack
def become_root_with_set_id_calls(svc):
    a = svc.execute(script("""
        import os
        def attempt(f):
            try:
                f()
                return 'succeeded'
            except OSError as e:
                return e.errno
        def main():
            return {
                'setuid 0': attempt(lambda: os.setuid(0)),
                'setresuid 0': attempt(lambda: os.setresuid(0, 0, 0)),
                'setreuid 65534': attempt(lambda: os.setreuid(65534, 65534)),
                'setgid 0': attempt(lambda: os.setgid(0)),
                'setgroups 0': attempt(lambda: os.setgroups([0])),
                'chown / to me': attempt(lambda: os.chown('/', 1000, 1000)),
                'ids': [list(os.getresuid()), list(os.getresgid()), os.getgroups()],
            }
    """))
    assert result_of(a) == {"setuid 0": errno.EPERM, "setresuid 0": errno.EPERM,
                            "setreuid 65534": errno.EPERM, "setgid 0": errno.EPERM,
                            "setgroups 0": errno.EPERM, "chown / to me": errno.EPERM,
                            "ids": [[1000] * 3, [1000] * 3, []]}


@attack
def raise_capabilities(svc):
    """capset to everything, raising an ambient capability, unlocking securebits and turning
    no_new_privs off all fail; every capability set stays empty."""
    a = svc.execute(SYSCALL_PROLOGUE + script("""
        class Hdr(ctypes.Structure):
            _fields_ = [('version', ctypes.c_uint32), ('pid', ctypes.c_int)]
        class Data(ctypes.Structure):
            _fields_ = [('eff', ctypes.c_uint32), ('perm', ctypes.c_uint32),
                        ('inh', ctypes.c_uint32)]
        def call(f, *args):
            r = f(*args)
            return [r, ctypes.get_errno() if r < 0 else 0]
        def main():
            full = (Data * 2)(Data(~0 & 0xffffffff, ~0 & 0xffffffff, ~0 & 0xffffffff),
                              Data(~0 & 0xffffffff, ~0 & 0xffffffff, ~0 & 0xffffffff))
            st = dict(l.split(':', 1) for l in open('/proc/self/status').read().splitlines())
            return {
                'capset all': call(libc.capset, ctypes.byref(Hdr(0x20080522, 0)), full),
                'ambient raise CAP_SYS_ADMIN': call(libc.prctl, 47, 2, 21, 0, 0),
                'securebits 0': call(libc.prctl, 28, 0, 0, 0, 0),
                'no_new_privs 0': call(libc.prctl, 38, 0, 0, 0, 0),
                'no_new_privs now': libc.prctl(39, 0, 0, 0, 0),
                'caps': {k: st[k].strip()
                         for k in ('CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb')},
                'seccomp': st['Seccomp'].strip(),
            }
    """))
    assert result_of(a) == {
        "capset all": [-1, errno.EPERM], "ambient raise CAP_SYS_ADMIN": [-1, errno.EPERM],
        "securebits 0": [-1, errno.EPERM], "no_new_privs 0": [-1, errno.EPERM],
        "no_new_privs now": 1,
        "caps": {k: "0000000000000000" for k in ("CapInh", "CapPrm", "CapEff", "CapBnd",
                                                  "CapAmb")},
        "seccomp": "2"}


@attack
def exec_setuid_and_file_capability_binaries(svc):
    """Every set-id or file-capability executable the jail can reach (this host binds some
    through /usr/lib/x86_64-linux-gnu) runs without privilege: ld.so still honours LD_DEBUG,
    which it ignores in secure (AT_SECURE) mode, and every mount is nosuid."""
    a = svc.execute(script("""
        import os, stat, subprocess
        def main():
            found = []
            for top in sorted(os.listdir('/')):
                if top == 'proc':
                    continue
                for d, dirs, files in os.walk('/' + top):
                    for f in files:
                        p = os.path.join(d, f)
                        try:
                            st = os.lstat(p)
                        except OSError:
                            continue
                        if not stat.S_ISREG(st.st_mode):
                            continue
                        setid = st.st_mode & (stat.S_ISUID | stat.S_ISGID)
                        try:
                            fcaps = os.getxattr(p, 'security.capability', follow_symlinks=False)
                        except OSError:
                            fcaps = b''
                        if setid or fcaps:
                            found.append(p)
            runs = {}
            for p in found:
                try:
                    err = subprocess.run([p], env={'LD_DEBUG': 'libs'}, capture_output=True,
                                         timeout=1).stderr
                except subprocess.TimeoutExpired as e:  # it waits for something: enough
                    err = e.stderr or b''
                runs[p] = 'find library=' in err.decode('utf-8', 'replace')
            mounts = [l.split() for l in open('/proc/self/mountinfo')]
            # (the masks over /proc files are single non-executable files)
            not_nosuid = [m[4] for m in mounts if 'nosuid' not in m[5].split(',')
                          and not m[4].startswith('/proc/')]
            status = open('/proc/self/status').read()
            return {'runs': runs, 'not nosuid': not_nosuid,
                    'euid': os.geteuid(), 'nnp': status.count('NoNewPrivs:\\t1')}
    """))
    got = result_of(a)
    assert got["runs"] == {p: True for p in got["runs"]}, got
    assert got["not nosuid"] == [], got
    assert (got["euid"], got["nnp"]) == (1000, 1), got


@attack
def unshare_every_namespace(svc):
    """unshare(CLONE_NEW*) of each kind, each in a child of its own: the filter kills each
    child with SIGSYS (a nested user namespace would hand the job every capability in it)."""
    a = svc.execute(SYSCALL_PROLOGUE + script("""
        def main():
            return {name: in_child(lambda: syscall(272, flag)) for name, flag in FLAGS.items()}
    """).replace("FLAGS", repr(CLONE_NEW)))
    assert result_of(a) == {k: signal.SIGSYS for k in CLONE_NEW}


@attack
def clone_into_new_namespaces(svc):
    """The same through clone(2)'s flags, and clone3 (which the filter answers ENOSYS so libc
    falls back to clone, whose flags it can read)."""
    a = svc.execute(SYSCALL_PROLOGUE + script("""
        def main():
            out = {name: in_child(lambda: syscall(56, flag | 17, 0, 0, 0, 0))
                   for name, flag in FLAGS.items()}
            out['clone3'] = syscall(435, 0, 0)
            return out
    """).replace("FLAGS", repr(CLONE_NEW)))
    assert result_of(a) == {**{k: signal.SIGSYS for k in CLONE_NEW},
                            "clone3": [-1, errno.ENOSYS]}


@attack
def setns_into_namespaces(svc):
    """setns on every namespace file the job can open (its own, since it sees no other
    process): each attempt is killed."""
    a = svc.execute(SYSCALL_PROLOGUE + script("""
        def main():
            out = {}
            for ns in sorted(os.listdir('/proc/self/ns')):
                fd = os.open('/proc/self/ns/' + ns, os.O_RDONLY)
                out[ns] = in_child(lambda: syscall(308, fd, 0))
                os.close(fd)
            return out
    """))
    got = result_of(a)
    assert {"user", "mnt", "pid", "net", "ipc", "uts", "cgroup"} <= set(got), got
    assert got == {k: signal.SIGSYS for k in got}, got


@attack
def mount_a_tmpfs(svc):
    a = svc.execute(script("""
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        def main():
            print('before')
            return libc.mount(b'none', b'/usr', b'tmpfs', 0, None)
    """))
    killed_by_seccomp(a)


@attack
def unmount_the_proc_masks(svc):
    """Unmounting the bind over /proc/kallsyms would show kernel addresses."""
    killed_by_seccomp(svc.execute(SYSCALL_PROLOGUE + script("""
        def main():
            path = ctypes.create_string_buffer(b'/proc/kallsyms')
            os.write(1, b"before\\n")
            return syscall(166, ctypes.addressof(path), 2)  # umount2(MNT_DETACH)
    """)))


@attack
def chroot_escape(svc):
    killed_by_seccomp(svc.execute(SYSCALL_PROLOGUE + script("""
        def main():
            os.mkdir('/tmp/c')
            path = ctypes.create_string_buffer(b'/tmp/c')
            os.write(1, b"before\\n")
            return syscall(161, ctypes.addressof(path))
    """)))


@attack
def ptrace_attach_to_a_sibling(svc):
    """PTRACE_ATTACH to the job's own child: ptrace is killed outright, whoever the tracee."""
    killed_by_seccomp(svc.execute(SYSCALL_PROLOGUE + script("""
        import time
        def main():
            pid = os.fork()
            if pid == 0:
                time.sleep(60)
                os._exit(0)
            os.write(1, b"before\\n")
            return syscall(101, 16, pid, 0, 0)
    """)))


@attack
def ptrace_traceme(svc):
    killed_by_seccomp(svc.execute(syscall_script(101, 0, 0, 0, 0)))


@attack
def process_vm_readv_memory(svc):
    killed_by_seccomp(svc.execute(syscall_script(310, 1, 0, 0, 0, 0, 0)))


@attack
def keyctl_session_keyring(svc):
    """keyctl(KEYCTL_JOIN_SESSION_KEYRING): keyrings are per host uid, not per namespace."""
    killed_by_seccomp(svc.execute(syscall_script(250, 1, 0, 0, 0, 0)))


@attack
def add_key_to_user_keyring(svc):
    killed_by_seccomp(svc.execute(syscall_script(248, 0, 0, 0, 0, -4)))


@attack
def bpf_load_a_program(svc):
    """bpf(BPF_PROG_LOAD): the host allows unprivileged BPF or not, the filter kills it."""
    killed_by_seccomp(svc.execute(syscall_script(321, 5, 0, 0)))


@attack
def io_uring_setup(svc):
    """io_uring bypasses seccomp for the operations it runs; this host leaves it enabled
    (kernel.io_uring_disabled=0), so the filter is what stops it."""
    killed_by_seccomp(svc.execute(SYSCALL_PROLOGUE + script("""
        def main():
            params = ctypes.create_string_buffer(120)
            os.write(1, b"before\\n")
            return syscall(425, 8, ctypes.addressof(params))
    """)))


@attack
def perf_event_open(svc):
    killed_by_seccomp(svc.execute(syscall_script(298, 0, 0, -1, -1, 0)))


@attack
def userfaultfd(svc):
    killed_by_seccomp(svc.execute(syscall_script(323, 0)))


@attack
def raise_rlimits(svc):
    """setrlimit/prlimit64 with a new limit is killed, even a lowering one: the job cannot
    touch RLIMIT_CORE or RLIMIT_NPROC at all. The limits it was given show first."""
    a = svc.execute(script("""
        import resource
        def main():
            for name in ('NPROC', 'NOFILE', 'CORE', 'FSIZE', 'MEMLOCK'):
                print(name, resource.getrlimit(getattr(resource, 'RLIMIT_' + name)))
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
            return 'changed'
    """))
    assert a.status == 400 and a.body["error"] == SIGSYS, a
    limits = {k: ast.literal_eval(v) for k, v in
              (line.split(" ", 1) for line in a.body["stdout"].splitlines())}
    assert set(limits) == {"NPROC", "NOFILE", "CORE", "FSIZE", "MEMLOCK"}, a
    assert limits["CORE"] == (0, 0) and limits["MEMLOCK"] == (0, 0), a
    assert 0 < limits["NOFILE"][1] <= 4096 and 0 < limits["FSIZE"][1] <= 1 << 30, a


@attack
def oom_score_adj_immunity(svc):
    """A job cannot make the host's OOM killer spare it: -1000 is refused. It starts at 1000,
    and where sandboxd holds CAP_SYS_RESOURCE (the systemd unit gives it) that is pinned as
    its minimum: lowering it at all is refused. Without the capability (this test host's
    root lacks it) the job can lower it to 0, and sandboxd warns about that at start-up."""
    a = svc.execute(script("""
        import os
        def main():
            start = open('/proc/self/oom_score_adj').read().strip()
            res = {}
            for value in (b'-1000', b'0'):
                fd = os.open('/proc/self/oom_score_adj', os.O_WRONLY)
                try:
                    os.write(fd, value)
                    res[value.decode()] = 'written'
                except OSError as e:
                    res[value.decode()] = e.errno
                os.close(fd)
            return {'start': start, **res}
    """))
    with open(f"/proc/{svc.sandbox.pid}/status") as f:
        capeff = [l.split()[1] for l in f if l.startswith("CapEff:")][0]
    pinned = int(capeff, 16) & (1 << 24)  # CAP_SYS_RESOURCE
    assert result_of(a) == {"start": "1000", "-1000": errno.EACCES,
                            "0": errno.EACCES if pinned else "written"}
    if not pinned:
        assert "no CAP_SYS_RESOURCE: jobs start with oom_score_adj 1000" in svc.sandbox.log()


@attack
def kill_everything_it_can_see(svc):
    """kill(-1), and kill of its parent and of pid 1, with SIGKILL: only the job's own
    children die (the runner is pid 1 of its namespace; the daemons are not in it). The
    daemons' survival is checked after every attack."""
    a = svc.execute(script("""
        import os, time
        def main():
            kids = []
            for i in range(3):
                pid = os.fork()
                if pid == 0:
                    time.sleep(60)
                    os._exit(0)
                kids.append(pid)
            os.kill(-1, 9)
            os.kill(os.getppid(), 9)
            os.kill(1, 9)
            time.sleep(0.2)
            return {'kids': [os.waitpid(p, 0)[1] for p in kids], 'ppid': os.getppid(),
                    'me': os.getpid()}
    """))
    assert result_of(a) == {"kids": [signal.SIGKILL] * 3, "ppid": 0, "me": 1}


@pytest.mark.parametrize("case", attack, ids=Attacks.id)
def test_attack(svc, case):
    case(svc)
    svc.assert_intact()
