"""A fake host tree for sandboxd's --audit-root: the /proc and /sys files its host audit reads
(sandboxd/audit.c), with the values of a well-hardened host, any of which a test overrides. So
every finding, fatal or weak, can be shown on any host without touching the host's settings.
The jail and the cgroups sandboxd uses stay the real ones."""
import os

HARDENED = {
    "proc/sys/kernel/unprivileged_bpf_disabled": "2",
    "proc/sys/vm/unprivileged_userfaultfd": "0",
    "proc/sys/kernel/io_uring_disabled": "2",
    "proc/sys/kernel/perf_event_paranoid": "3",
    "proc/sys/kernel/kptr_restrict": "1",
    "proc/sys/kernel/dmesg_restrict": "1",
    "proc/sys/fs/protected_symlinks": "1",
    "proc/sys/fs/protected_hardlinks": "1",
    "proc/sys/fs/protected_fifos": "1",
    "proc/sys/fs/protected_regular": "2",
    "proc/sys/kernel/yama/ptrace_scope": "1",
    "proc/sys/kernel/core_pattern": "core",
    "proc/sys/kernel/seccomp/actions_avail":
        "kill_process kill_thread trap errno user_notif trace log allow",
    "sys/fs/cgroup/cgroup.controllers": "cpuset cpu io memory hugetlb pids rdma misc",
    "proc/cgroups": "#subsys_name\thierarchy\tnum_cgroups\tenabled\n",
    "proc/swaps": "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n",
}
NAMESPACES = ("user", "pid", "net", "mnt", "ipc", "uts", "cgroup")
for _ns in NAMESPACES:
    HARDENED[f"proc/self/ns/{_ns}"] = ""
    HARDENED[f"proc/sys/user/max_{_ns}_namespaces"] = "63000"


def make(root, changes=None):
    """Writes the tree under root and returns root. changes maps a path below it to its text,
    or to None to leave the file out (a kernel without that knob or namespace type)."""
    files = {**HARDENED, **(changes or {})}
    for path, text in files.items():
        if text is None:
            continue
        full = os.path.join(root, path)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "w") as f:
            f.write(text if text.endswith("\n") or not text else text + "\n")
    return root
