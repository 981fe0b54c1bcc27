"""Helpers of the cgroup faults: sandboxd started in v1 cgroups of the test's own, so the parents
of its job cgroups ('<own cgroup>/pyexec') are its alone and can be broken or filled without
touching any other daemon on the host."""
import errno
import os
import signal
import time

import census
import harness
from hostview import wait_for


def own_v1_dirs(name):
    """'<mount><our cgroup>/<name>' in each v1 hierarchy sandboxd uses (shared ones once)."""
    mnts = census._cgroup_mounts()
    mine = {}
    for line in census.read_text("/proc/self/cgroup").splitlines():
        _, ctrls, path = line.split(":", 2)
        for c in ctrls.split(","):
            mine[c] = path
    dirs = []
    for c in census.CONTROLLERS:
        mnt, root = mnts[c]
        path = mine[c]
        rel = path[len(root):] if root != "/" and path.startswith(root) else path
        d = mnt + rel.rstrip("/") + "/" + name
        if d not in dirs:
            dirs.append(d)
    return dirs


def rmdir_tree(d):
    """Removes a cgroup directory and its child cgroups (cgroupfs has only directories to
    remove; their files go with them), killing any task still in them first (a test that
    failed half-way may have left one). Fails if it cannot."""
    if not os.path.isdir(d):
        return
    for sub in os.listdir(d):
        if os.path.isdir(os.path.join(d, sub)):
            rmdir_tree(os.path.join(d, sub))
    for _ in range(100):
        for pid in (census.read_text(os.path.join(d, "cgroup.procs")) or "").split():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            os.rmdir(d)
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"cannot remove {d}: still busy after 5 s")


def set_quota(cgroup, us):
    """Writes cpu.cfs_quota_us. v1 checks a new quota against every task group of the host, and
    a job cgroup just removed stays one for a moment (its quota, 100% of a CPU, is over 50%):
    EINVAL then, for a few tens of ms. Retried until written, then read back."""
    path = os.path.join(cgroup, "cpu.cfs_quota_us")

    def write():
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, str(us).encode())
            return True
        except OSError as e:
            if e.errno != errno.EINVAL:
                raise
            return False
        finally:
            os.close(fd)
    wait_for(write, 30, interval=0.02, what=f"{path} to take {us}")
    assert int(census.read_text(path)) == us


def try_rmdir(d):
    """rmdir, or False while the directory is busy (the last job's cgroup is still being
    removed: v1 takes a moment after its last task is reaped)."""
    try:
        os.rmdir(d)
        return True
    except OSError as e:
        if e.errno not in (errno.EBUSY, errno.ENOTEMPTY):
            raise
        return False


class CgroupSandbox(harness.Sandbox):
    """A sandboxd started in the cgroups `cg_dirs` (a shell joins them, then execs it)."""

    def __init__(self, *flags, cg_dirs, **kw):
        super().__init__(*flags, **kw)
        procs = " ".join(os.path.join(d, "cgroup.procs") for d in cg_dirs)
        self.argv = ["/bin/sh", "-c", f'for f in {procs}; do echo $$ > "$f" || exit 97; done; '
                     'exec "$@"', "sh", *self.argv]


def run_hello(sbx, script=None):
    """The hello example (or `script`) straight on sandboxd's socket: its result record."""
    import pxclient
    from conftest import HELLO
    with pxclient.Client(sbx.socket, timeout=harness.DEFAULT_TIMEOUT) as c:
        return c.run(script or HELLO)
