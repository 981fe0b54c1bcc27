"""The host's view of the daemons under test, shared by the integration and gateway suites:
polling for a condition, reading a process's /proc status, and finding job processes and
job cgroups."""
import os
import time


def wait_for(cond, timeout, interval=0.05, what="condition"):
    """Polls cond() until it returns a true value; returns it, or fails after timeout."""
    end = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def read_status(pid):
    """Fields of /proc/PID/status as a dict, or None when the process is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            text = f.read()
    except OSError:
        return None
    st = {}
    for line in text.splitlines():
        k, _, v = line.partition(":")
        st[k] = v.strip()
    return st


def slot_fd_count(sandboxd_pid):
    """sandboxd's fds on job slots' kept cgroups (cgroup v1: a directory and its cgroup.procs
    per kept controller, sandboxd/cgroup.h struct cg_slot). A slot holds them from its first
    job on, for its next jobs: they are not any job's, and more slots get made as more jobs run
    at once, so fd counts compared over time leave them out."""
    n = 0
    fd_dir = f"/proc/{sandboxd_pid}/fd"
    try:
        fds = os.listdir(fd_dir)
    except OSError:
        return 0
    for fd in fds:
        try:
            n += f"/slot-{sandboxd_pid}-" in os.readlink(os.path.join(fd_dir, fd))
        except OSError:
            pass
    return n


def job_cgroups(pid, parents, warm=None):
    """Job cgroups of sandboxd `pid` (job-<pid>-<seq>) under its parents, but those of the
    warm path (each holds exactly one of the `warm` pids: the zygote or a waiting spare;
    found on the host when not given). A v1 job slot's kept cgroups (slot-<pid>-*) count only
    if a task is in them: between two of the slot's jobs they are empty."""
    if warm is None:
        warm = warm_pids(pid)
    found = []
    for parent in parents:
        try:
            names = os.listdir(parent)
        except OSError:
            continue
        for n in names:
            slot = n.startswith(f"slot-{pid}-")
            if not slot and not n.startswith(f"job-{pid}-"):
                continue
            try:
                with open(os.path.join(parent, n, "cgroup.procs")) as f:
                    procs = {int(x) for x in f.read().split()}
            except OSError:
                procs = set()
            if slot and not procs:
                continue  # a slot's, between two of its jobs
            if not (len(procs) == 1 and procs <= warm):
                found.append(os.path.join(parent, n))
    return sorted(found)


def children_of(pid):
    """[(pid, state)] of the direct children of pid (zombies included), from /proc/*/stat."""
    kids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[1]) == int(pid):
            kids.append((int(d), fields[0]))
    return kids


def _pipes(pid, fds=None):
    """{inode} of the pipes among a process's fds (all, or only those in fds)."""
    found = set()
    try:
        names = fds if fds is not None else os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return found
    for fd in names:
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("pipe:["):
            found.add(link[6:-1])
    return found


def is_dying(pid):
    """The kernel is tearing the process down: it will never run a user instruction again
    (a zombie, exiting, or with SIGKILL pending). sandboxd answers a job as soon as its result
    is in and kills it in the same step, so its processes may still be in this state."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return True  # gone
    fields = stat.rpartition(")")[2].split()
    state, flags = fields[0], int(fields[6])
    if state in ("Z", "X") or flags & 0x4:  # PF_EXITING
        return True
    st = read_status(pid) or {}
    return any(int(st.get(k, "0"), 16) & (1 << 8) for k in ("SigPnd", "ShdPnd"))  # SIGKILL


def host_procs(lo, hi, daemon_pid=None, grace=5.0):
    """Every live process on the host with any of its uids in [lo, hi): [(pid, uid, name, state)].

    With daemon_pid, that sandboxd's unassigned warm-path spares are left out: they hold job
    uids before they have a job. A spare is recognised by its fd 3, the script pipe, whose
    other end the daemon still holds; a job's fd 3 is closed once the runner has read its
    script, and the daemon closes its end as soon as the script is written. Processes the
    kernel is killing (is_dying) get `grace` seconds to be gone before they count."""
    end = time.monotonic() + grace
    while True:
        found = _host_procs(lo, hi, daemon_pid)
        if not any(is_dying(p[0]) for p in found) or time.monotonic() > end:
            return found
        time.sleep(0.02)


def _host_procs(lo, hi, daemon_pid, spares=False):
    # Only a daemon with a zygote has spares: a cold job's init also reads a script pipe the
    # daemon holds, for the moment before its script is written.
    warm = bool(daemon_pid and zygote_pids(daemon_pid))
    waiting = _pipes(daemon_pid) if warm else set()
    fresh = False
    found = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        st = read_status(d)
        if not st or "Uid" not in st:
            continue
        uids = [int(x) for x in st["Uid"].split()]
        if not any(lo <= u < hi for u in uids):
            continue
        script = _pipes(d, ["3"])
        if warm and script and not script & waiting and not fresh:
            # A spare made after the daemon's pipes were read: read them again, once.
            waiting, fresh = _pipes(daemon_pid), True
        if spares == bool(script & waiting):
            found.append((int(d), uids[0], st.get("Name", "?"), st.get("State", "?")))
    return found


def zygote_pids(daemon_pid):
    """A sandboxd's live zygote: its child named pyexec-zygote in its own PID namespace
    (spares, its other children of that name, are each in a new one)."""
    pids = set()
    for d in os.listdir("/proc"):
        st = read_status(d) if d.isdigit() else None
        if st and st.get("PPid") == str(daemon_pid) and st.get("Name") == "pyexec-zygote" \
                and len(st.get("NSpid", "").split()) == 1 and not is_dying(d):
            pids.add(int(d))
    return pids


def warm_pids(daemon_pid, lo=0, hi=1 << 32):
    """The pids of a sandboxd's warm path: its zygote and its spares still waiting for a job
    (see host_procs)."""
    return {p[0] for p in _host_procs(lo, hi, daemon_pid, spares=True) if not is_dying(p[0])} \
        | zygote_pids(daemon_pid)
