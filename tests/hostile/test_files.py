"""Host files: a job can neither read nor change anything of the host's filesystem."""
import errno
import hashlib
import os
import secrets
import shutil
import stat
import tempfile

import pytest

from hostile import (SYSCALL_PROLOGUE, Attacks, killed_by_seccomp, result_of, script,
                     syscall_script)

attack = Attacks()
DENIED = {errno.EROFS, errno.EACCES, errno.EPERM}

# Tries each path with each way of reaching it from inside; returns {path: errno or content}.
READ_ALL = script("""
    import os
    def main():
        out = {}
        for p in PATHS:
            try:
                with open(p, 'rb') as f:
                    out[p] = f.read().decode('utf-8', 'replace')
            except OSError as e:
                out[p] = e.errno
        return out
""")


def planted_files(svc):
    """Two secret host files: one in sandboxd's own directory, one in a fresh host /tmp dir."""
    value = "planted-" + secrets.token_hex(8)
    d = tempfile.mkdtemp(prefix="pyexec-hostile-")
    os.chmod(d, 0o755)
    paths = [os.path.join(svc.sandbox.dir, "planted-secret"), os.path.join(d, "planted-secret")]
    for p in paths:
        with open(p, "w") as f:
            f.write(value)
        os.chmod(p, 0o644)  # readable by anyone on the host: only the jail keeps it away
    return value, paths, d


@attack
def read_planted_host_secrets(svc):
    """World-readable secrets on the host, by their path and through every /proc root link and
    relative traversal a job has: none exists in the jail."""
    value, planted, d = planted_files(svc)
    try:
        paths = []
        for p in planted:
            paths += [p, "/proc/1/root" + p, "/proc/self/root" + p, "/proc/self/cwd/../.." + p,
                      "/tmp/../../../.." + p]
        paths += ["/etc/shadow", "/etc/gshadow", "/root/.bash_history", "/etc/ssh/ssh_host_rsa_key",
                  "/var/log/syslog", "/home", "/work/wt-hostile/README.md", "/run/pyexec",
                  svc.sandbox.socket, svc.sandbox.log_path, svc.gateway.log_path]
        a = svc.execute(READ_ALL.replace("PATHS", repr(paths)))
        got = result_of(a)
        assert got == {p: errno.ENOENT for p in paths}, got
        assert value not in a.text
    finally:
        shutil.rmtree(d, ignore_errors=True)
        os.unlink(planted[0])


@attack
def search_whole_jail_for_host_secret(svc):
    """Walks every directory the jail has (but /proc) looking for the planted file by name: the
    walk sees the whole bound interpreter and libraries, and never the host's file."""
    value, planted, d = planted_files(svc)
    try:
        a = svc.execute(script("""
            import os
            def main():
                seen, hits = 0, []
                for top in sorted(os.listdir('/')):
                    if top == 'proc':
                        continue
                    for dirpath, dirs, files in os.walk('/' + top):
                        seen += len(files)
                        hits += [os.path.join(dirpath, f) for f in files if f == 'planted-secret']
                return {'files': seen, 'hits': hits}
        """))
        got = result_of(a)
        assert got["hits"] == [], got
        assert got["files"] > 1000, got  # the walk did run through the bound trees
        assert value not in a.text
    finally:
        shutil.rmtree(d, ignore_errors=True)
        os.unlink(planted[0])


def digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


@attack
def overwrite_interpreter_libraries_and_runner(svc):
    """Every way of changing the bound host files is refused, and the host's copies are
    byte-for-byte unchanged afterwards."""
    runner = svc.sandbox.argv[svc.sandbox.argv.index("--runner") + 1]
    host_files = ["/usr/lib/python3.11/os.py", "/usr/bin/python3.11", runner,
                  "/usr/lib/python3/dist-packages/numpy/__init__.py"]
    before = {p: (digest(p), os.stat(p).st_mtime_ns, os.stat(p).st_mode) for p in host_files}
    a = svc.execute(script("""
        import os
        def attempt(f):
            try:
                f()
                return 'succeeded'
            except OSError as e:
                return e.errno
        def write(p, mode):
            with open(p, mode) as f:
                f.write(b'pwned')
        def main():
            return {
                'append os.py': attempt(lambda: write('/usr/lib/python3.11/os.py', 'ab')),
                'create in stdlib': attempt(
                    lambda: write('/usr/lib/python3.11/hostile_pwned.py', 'wb')),
                'rewrite python': attempt(lambda: write('/usr/bin/python3.11', 'r+b')),
                'truncate python': attempt(lambda: os.truncate('/usr/bin/python3.11', 0)),
                'chmod python': attempt(lambda: os.chmod('/usr/bin/python3.11', 0o4777)),
                'utime os.py': attempt(lambda: os.utime('/usr/lib/python3.11/os.py', (0, 0))),
                'rename os.py': attempt(
                    lambda: os.rename('/usr/lib/python3.11/os.py', '/usr/lib/python3.11/o.py')),
                'unlink runner': attempt(lambda: os.unlink('/opt/pyexec/runner.py')),
                'append runner': attempt(lambda: write('/opt/pyexec/runner.py', 'ab')),
                'append numpy': attempt(
                    lambda: write('/usr/lib/python3/dist-packages/numpy/__init__.py', 'ab')),
                'create /': attempt(lambda: write('/pwned', 'wb')),
                'create /etc': attempt(lambda: write('/etc/ld.so.preload', 'wb')),
                'append /etc/passwd': attempt(lambda: write('/etc/passwd', 'ab')),
                'mkdir /usr/lib': attempt(lambda: os.mkdir('/usr/lib/x86_64-linux-gnu/pwned')),
            }
    """))
    got = result_of(a)
    assert len(got) == 14 and all(v in DENIED for v in got.values()), f"{got}"
    for k in ("create /", "create /etc", "append /etc/passwd"):
        assert got[k] == errno.EROFS, (k, got)
    after = {p: (digest(p), os.stat(p).st_mtime_ns, os.stat(p).st_mode) for p in host_files}
    assert after == before
    assert not os.path.exists("/usr/lib/python3.11/hostile_pwned.py")
    assert not os.path.exists("/usr/lib/x86_64-linux-gnu/pwned")


@attack
def files_written_in_tmp_stay_in_the_job(svc):
    """What a job writes in its /tmp and /dev/shm lands in its own tmpfs, never in the
    host's directories of the same names."""
    name = "hostile-" + secrets.token_hex(6)
    a = svc.execute(script("""
        import os
        def main():
            for d in ('/tmp', '/dev/shm'):
                with open(os.path.join(d, NAME), 'w') as f:
                    f.write('written from a job')
            return sorted(os.listdir('/tmp')) + sorted(os.listdir('/dev/shm'))
    """).replace("NAME", repr(name)))
    assert result_of(a) == [name, name]
    for d in ("/tmp", "/dev/shm", "/run", "/var/tmp", svc.sandbox.dir, svc.sandbox.jail):
        assert not os.path.exists(os.path.join(d, name)), d


@attack
def tamper_with_host_device_nodes(svc):
    """/dev/null and friends are the host's own nodes bound in: the job cannot chmod, chown,
    remove or add to them, nor make new device nodes; the dangerous ones are absent."""
    before = {p: os.stat(p) for p in ("/dev/null", "/dev/zero", "/dev/urandom")}
    a = svc.execute(script("""
        import os, stat
        def attempt(f):
            try:
                f()
                return 'succeeded'
            except OSError as e:
                return e.errno
        CHR, BLK = stat.S_IFCHR | 0o600, stat.S_IFBLK | 0o600
        def main():
            out = {
                'chmod null': attempt(lambda: os.chmod('/dev/null', 0o600)),
                'chown zero': attempt(lambda: os.chown('/dev/zero', 1000, 1000)),
                'unlink urandom': attempt(lambda: os.unlink('/dev/urandom')),
                'mknod /dev/mem': attempt(lambda: os.mknod('/dev/mem', CHR, os.makedev(1, 1))),
                'mknod /tmp/mem': attempt(lambda: os.mknod('/tmp/mem', CHR, os.makedev(1, 1))),
                'mknod /tmp/vda': attempt(lambda: os.mknod('/tmp/vda', BLK, os.makedev(254, 0))),
            }
            for p in ('/dev/mem', '/dev/kmem', '/dev/port', '/dev/kmsg', '/dev/vda', '/dev/sda',
                      '/dev/tty', '/dev/console', '/dev/fuse', '/dev/net/tun', '/dev/kvm'):
                out[p] = attempt(lambda: open(p, 'rb').close())
            return out
    """))
    got = result_of(a)
    assert got["chmod null"] == errno.EPERM, got
    assert got["chown zero"] in DENIED, got
    assert got["unlink urandom"] in DENIED, got
    for k in ("mknod /dev/mem", "mknod /tmp/mem", "mknod /tmp/vda"):
        assert got[k] in DENIED, (k, got)
    for p in ("/dev/mem", "/dev/kmem", "/dev/port", "/dev/kmsg", "/dev/vda", "/dev/sda",
              "/dev/tty", "/dev/console", "/dev/fuse", "/dev/net/tun", "/dev/kvm"):
        assert got[p] == errno.ENOENT, (p, got)
    for p, st in before.items():
        now = os.stat(p)
        assert (now.st_mode, now.st_uid, now.st_gid, now.st_rdev) == \
            (st.st_mode, st.st_uid, st.st_gid, st.st_rdev), p
        assert stat.S_ISCHR(now.st_mode)


@attack
def symlinks_in_tmp_are_not_followed(svc):
    """/tmp is nosymfollow: a symlink planted there (the usual first step of a link race
    against a privileged reader) resolves nowhere."""
    a = svc.execute(script("""
        import os
        def main():
            out = {}
            for name, target in (('etc', '/etc/passwd'), ('root', '/proc/1/root'),
                                 ('self', '/tmp')):
                os.symlink(target, '/tmp/' + name)
                try:
                    os.stat('/tmp/%s/.' % name if name != 'etc' else '/tmp/etc')
                    out[name] = 'followed'
                except OSError as e:
                    out[name] = e.errno
            out['readlink'] = os.readlink('/tmp/etc')
            return out
    """))
    assert result_of(a) == {"etc": errno.ELOOP, "root": errno.ELOOP, "self": errno.ELOOP,
                            "readlink": "/etc/passwd"}


@attack
def open_by_handle_at_shocker(svc):
    """The classic container escape: open a host inode by a forged file handle. The filter
    kills the job in name_to_handle_at/open_by_handle_at."""
    killed_by_seccomp(svc.execute(syscall_script(304, -100, 0, 0)))  # open_by_handle_at


@attack
def name_to_handle_at_probe(svc):
    killed_by_seccomp(svc.execute(SYSCALL_PROLOGUE + script("""
        def main():
            path = ctypes.create_string_buffer(b"/")
            handle = ctypes.create_string_buffer(136)
            mount_id = ctypes.c_int()
            os.write(1, b"before\\n")
            return syscall(303, -100, ctypes.addressof(path), ctypes.addressof(handle),
                           ctypes.addressof(mount_id), 0)
    """)))


@pytest.mark.parametrize("case", attack, ids=Attacks.id)
def test_attack(svc, case):
    case(svc)
    svc.assert_intact()
