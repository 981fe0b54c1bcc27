"""What a sandboxd and a gatewayd hold on the host, counted from outside: the soak and the fault
tests take one census before and one after, and compare.

Counted per daemon, from /proc and cgroupfs only (nothing asks the daemons themselves):
  - open fds (/proc/PID/fd; sandboxd's on job slots' kept cgroups left out: they are no
    job's, hostview.slot_fd_count()), and resident memory (reported, never compared);
  - job cgroups (job-<sandboxd pid>-*) under each of sandboxd's cgroup parents: the v1
    'pyexec' directory of memory, pids, cpu and cpuacct, or its own v2 cgroup; and on v1 any
    task left in a job slot's pids and cpuacct cgroups (slot-<sandboxd pid>-*, kept from one
    job of the slot to the next: empty between them);
  - mounts of the host (sandboxd's mount namespace is the host's), and those under the
    daemon's own directory, where a job's root would stay mounted if its namespace leaked;
  - host processes with a uid in the daemon's job uid range (every task of every job);
  - children of sandboxd (a job init not reaped shows as a zombie here), and of gatewayd;
  - entries in the jail mount point.
"""
import os
import re
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import hostview  # noqa: E402  (the warm path's zygote and waiting spares are not leftovers)

CONTROLLERS = ("memory", "pids", "cpu", "cpuacct")


def read_text(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def fd_count(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


def pidfd_count(pid):
    """How many pidfds the process holds (sandboxd: one per job, spare and zygote)."""
    n = 0
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                n += os.readlink(f"/proc/{pid}/fd/{fd}") == "anon_inode:[pidfd]"
            except OSError:
                pass
    except OSError:
        pass
    return n


def rss_kib(pid):
    text = read_text(f"/proc/{pid}/status") or ""
    m = re.search(r"^VmRSS:\s+(\d+) kB", text, re.M)
    return int(m.group(1)) if m else None


def host_procs(lo, hi, daemon_pid=None):
    """[(pid, name)] of every process on the host with any uid in [lo, hi), zombies included;
    with daemon_pid, that sandboxd's waiting warm-path spares are left out (hostview)."""
    return [(p[0], p[2]) for p in hostview.host_procs(lo, hi, daemon_pid, grace=0)]


children_of = hostview.children_of


def warm_settled(sandbox, spares=4, timeout=30):
    """On the warm path, waits (at most `timeout`) until the zygote and its `spares` waiting
    spares are all there, so that two counts compare the same idle state; returns their pids."""
    if "warm path: verified" not in sandbox.log() or sandbox.proc.poll() is not None:
        return set()
    end = time.monotonic() + timeout
    while True:
        pids = hostview.warm_pids(sandbox.pid, *sandbox.uid_range)
        if len(pids) >= spares + 1 or time.monotonic() > end:
            return pids
        time.sleep(0.05)


def mounts(pid="self"):
    """The mount points of a mount namespace, as 'root mountpoint' strings, sorted."""
    text = read_text(f"/proc/{pid}/mountinfo") or ""
    return sorted(" ".join(line.split()[3:5]) for line in text.splitlines())


def _cgroup_mounts():
    """{controller: (mount point, mount root)} of the v1 hierarchies, and '' for cgroup2."""
    found = {}
    for line in (read_text("/proc/self/mountinfo") or "").splitlines():
        pre, _, post = line.partition(" - ")
        fields, tail = pre.split(), post.split()
        if len(fields) < 5 or len(tail) < 3:
            continue
        if tail[0] == "cgroup2":
            found.setdefault("", (fields[4], fields[3]))
        elif tail[0] == "cgroup":
            for opt in tail[2].split(","):
                if opt in CONTROLLERS:
                    found.setdefault(opt, (fields[4], fields[3]))
    return found


def cgroup_parents(pid, log_text=""):
    """The directories where sandboxd `pid` makes its job cgroups, as cgroup_v1.c and
    cgroup_v2.c choose them: '<mount><its own cgroup>/pyexec' per v1 controller (or the
    hierarchy's root '/pyexec'), and its own cgroup on v2, as named in its start-up line."""
    dirs = set()
    mnts = _cgroup_mounts()
    for line in (read_text(f"/proc/{pid}/cgroup") or "").splitlines():
        _, ctrls, path = line.split(":", 2)
        for ctrl in ctrls.split(","):
            if ctrl not in CONTROLLERS or ctrl not in mnts:
                continue
            mnt, root = mnts[ctrl]
            rel = path[len(root):] if root != "/" and path.startswith(root) else path
            # Under its own cgroup; the hierarchy's root only where that could not be made.
            for cand in (mnt + rel.rstrip("/") + "/pyexec", mnt + "/pyexec"):
                if os.path.isdir(cand):
                    dirs.add(cand)
                    break
    for line in log_text.splitlines():
        if "cgroup v1 fallback:" in line:
            for part in line.split("cgroup v1 fallback:")[1].split(","):
                if " at " in part:
                    dirs.add(part.split(" at ")[1].split(" (")[0].strip())
        elif "cgroup v2 at " in line:
            dirs.add(line.split("cgroup v2 at ")[1].split(" (")[0].strip())
    return sorted(dirs)


# Job cgroups left, as the integration suite's leak test counts them too.
job_cgroups = hostview.job_cgroups


class Census:
    """One count of everything a sandboxd (and optionally its gatewayd) holds."""

    def __init__(self, sandbox, gateway=None):
        self.sandbox_pid = sandbox.pid
        warm = warm_settled(sandbox)
        self.parents = cgroup_parents(sandbox.pid, sandbox.log())
        sbx_fds = fd_count(sandbox.pid)
        self.sbx_fds = sbx_fds - hostview.slot_fd_count(sandbox.pid) if sbx_fds else sbx_fds
        self.sbx_rss = rss_kib(sandbox.pid)
        self.sbx_children = [c for c in children_of(sandbox.pid) if c[0] not in warm]
        self.cgroups = job_cgroups(sandbox.pid, self.parents, warm)
        self.job_procs = host_procs(*sandbox.uid_range, daemon_pid=sandbox.pid)
        self.mounts = mounts()
        self.own_mounts = [m for m in self.mounts if sandbox.dir in m]
        try:
            self.jail_entries = sorted(os.listdir(sandbox.jail))
        except OSError:
            self.jail_entries = None
        self.gw_fds = fd_count(gateway.pid) if gateway else None
        self.gw_rss = rss_kib(gateway.pid) if gateway else None
        self.gw_children = children_of(gateway.pid) if gateway else None

    def figures(self):
        """The counts, as one dict (for printing)."""
        return {
            "sandboxd fds": self.sbx_fds,
            "sandboxd children": len(self.sbx_children),
            "sandboxd RSS KiB": self.sbx_rss,
            "job cgroups": len(self.cgroups),
            "job processes": len(self.job_procs),
            "host mounts": len(self.mounts),
            "mounts under the daemon's dir": len(self.own_mounts),
            "jail dir entries": None if self.jail_entries is None else len(self.jail_entries),
            "gatewayd fds": self.gw_fds,
            "gatewayd children": None if self.gw_children is None else len(self.gw_children),
            "gatewayd RSS KiB": self.gw_rss,
        }

    def leaks_since(self, before):
        """What this census holds that `before` did not, as readable lines (empty: none).
        Resident memory is reported by the caller, not judged here. Host mounts that other
        processes on a shared host made meanwhile are not ours: only mounts under the daemon's
        own directory, and mounts that appeared anywhere else with a jail path, count."""
        bad = []
        for what, a, b in (("sandboxd fds", before.sbx_fds, self.sbx_fds),
                           ("gatewayd fds", before.gw_fds, self.gw_fds)):
            if a is not None and b is not None and b != a:
                bad.append(f"{what}: {a} before, {b} after")
        if self.sbx_children:
            bad.append(f"sandboxd children: {self.sbx_children}")
        if self.gw_children:
            bad.append(f"gatewayd children: {self.gw_children}")
        if self.cgroups:
            bad.append(f"job cgroups left: {self.cgroups[:10]}")
        if self.job_procs:
            bad.append(f"job processes left: {self.job_procs[:10]}")
        new_own = sorted(set(self.own_mounts) - set(before.own_mounts))
        if new_own:
            bad.append(f"mounts under the daemon's directory: {new_own[:10]}")
        if self.jail_entries:
            bad.append(f"jail mount point not empty: {self.jail_entries[:10]}")
        return bad


def print_census(before, after, out=print):
    fb, fa = before.figures(), after.figures()
    out(f"{'':32} {'before':>10} {'after':>10}")
    for k in fb:
        out(f"{k:32} {str(fb[k]):>10} {str(fa[k]):>10}")
