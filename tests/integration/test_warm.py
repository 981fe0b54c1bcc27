"""The warm path: a zygote with numpy and pandas loaded clones one process per job ahead of time.

Every jail test (test_jail.py) runs on the warm path already (the session daemon waits for
it); these are the properties only the warm path has: what each job gets fresh although it
was forked from one template, what the zygote itself may do, and what happens when it dies.
"""
import json
import os
import re
import signal
import time

import pytest

from conftest import RUNNER, read_status, script, wait_for
from hostview import warm_pids, zygote_pids


def ok(r):
    assert r["verdict"] == "ok", r
    return json.loads(r["result"])


def zygote_pid(d):
    pids = zygote_pids(d.pid)
    assert len(pids) == 1, pids
    return pids.pop()


EXE = "import os\ndef main():\n    return os.readlink('/proc/self/exe')\n"
ZYGOTE_EXE = "/opt/pyexec/pyexec-zygote"
PYTHON_EXE = "/usr/bin/python3.11"


@pytest.fixture
def warm_daemon(daemon):
    if not daemon.warm:
        pytest.skip("the warm path is off in this run (--warm-spares 0)")
    return daemon


def test_each_zygote_is_verified_by_a_canary_before_it_serves(warm_daemon):
    log = warm_daemon.log()
    assert "canary (cold): uid 1000" in log
    assert "canary (warm): uid 1000" in log
    assert log.index("canary (warm)") < log.index("warm path: verified")


def test_default_jobs_run_in_a_spare_of_the_zygote(warm_daemon, run):
    assert ok(run(EXE)) == ZYGOTE_EXE
    assert ok(run("import sys\ndef main():\n    return [sys.executable, sys.flags.isolated,"
                  " sys.flags.no_site, sys.flags.dont_write_bytecode]\n")) == [
        PYTHON_EXE, 1, 1, 1]
    warm_daemon.mark_log()
    ok(run("def main():\n    return 1\n"))
    assert "ok in" in warm_daemon.log_since_mark() and "(warm," in warm_daemon.log_since_mark()


def test_a_warm_jobs_sys_path_is_a_cold_jobs(warm_daemon, run):
    """The zygote sets it once, after its imports and rehearsal; a job keeps it."""
    src = "import sys\ndef main():\n    return sys.path\n"
    assert ok(run(src)) == ok(run(src, memory_mb=256)) == [
        "/usr/lib/python311.zip", "/usr/lib/python3.11", "/usr/lib/python3.11/lib-dynload",
        "/usr/lib/python3/dist-packages"]


def test_jobs_with_their_own_limits_run_cold(warm_daemon, run):
    assert ok(run(EXE, memory_mb=256)) == PYTHON_EXE
    assert ok(run(EXE, timeout_ms=5000)) == PYTHON_EXE


def test_random_state_is_fresh_in_every_job(warm_daemon, run):
    src = script("""
        import os, random, uuid
        import numpy as np
        def main():
            legacy = np.random.mtrand._rand
            return [random.random(), float(np.random.rand()), str(uuid.uuid4()),
                    os.urandom(8).hex(), float(np.random.default_rng().random()),
                    # Not the SeedSequence numpy drew in the zygote (every job's, to spawn()
                    # from).
                    repr(legacy._bit_generator._seed_seq)]
    """)
    draws = [ok(run(src)) for _ in range(4)]
    for i in range(5):
        column = [d[i] for d in draws]
        assert len(set(column)) == len(column), (i, column)
    assert [d[5] for d in draws] == ["None"] * 4


STDIO = script(r"""
    import os, sys
    def main():
        seen = []
        for name in ("stdin", "stdout", "stderr"):
            s = getattr(sys, name)
            raw = getattr(s.buffer, "raw", s.buffer)
            seen.append([name, s is getattr(sys, "__%s__" % name), type(s).__name__,
                         type(s.buffer).__name__, type(raw).__name__, raw.mode, raw.closefd,
                         s.encoding, s.errors, s.line_buffering, s.write_through, s.fileno(),
                         s.readable(), s.writable(), s.seekable(), s.isatty(), repr(s),
                         repr(s.buffer), repr(raw), getattr(s.buffer, "buffer_size", None),
                         s._CHUNK_SIZE])
        seen.append(sys.stdin.read())
        seen.append(sys.stdin.tell())
        print("out")
        os.write(1, b"raw\n")
        print("err", file=sys.stderr, end="")
        sys.stderr.write("or\n")
        os.write(2, b"raw\n")
        return seen
""")


def test_a_warm_jobs_stdio_is_a_cold_jobs(warm_daemon, run):
    """A warm job starts with streams the zygote made once (runner.py stdio_for_jobs()): they
    must be what a cold job's interpreter makes on its own fds, and write to the job's pipes."""
    warm, cold = run(STDIO), run(STDIO, memory_mb=256)
    assert ok(warm) == ok(cold)
    assert ok(warm)[1][2:17] == ["TextIOWrapper", "FileIO", "FileIO", "wb", False, "utf-8",
                                 "surrogateescape", False, True, 1, False, True, False, False,
                                 "<_io.TextIOWrapper name='<stdout>' mode='w' encoding='utf-8'>"]
    for r in (warm, cold):
        assert (r["stdout"], r["stderr"]) == (b"out\nraw\n", b"error\nraw\n")


def test_nothing_of_one_warm_job_reaches_the_next(warm_daemon, run):
    """Module state, /tmp, /dev/shm and the environment are per job, although every job is a
    fork of one template process."""
    first = script("""
        import os, sys, json
        import numpy as np
        def main():
            np.seterr(all='raise')
            json.dumps = None
            sys.modules['pandas'].marker = 'left behind'
            os.environ['LEFT'] = 'behind'
            open('/tmp/left', 'w').write('x')
            open('/dev/shm/left', 'w').write('x')
            sys.path.append('/tmp')
            return 'done'
    """)
    second = script("""
        import os, sys, json
        import numpy as np
        import pandas as pd
        def main():
            return {'seterr': np.geterr()['divide'], 'dumps': json.dumps is not None,
                    'marker': hasattr(pd, 'marker'), 'env': 'LEFT' in os.environ,
                    'tmp': os.listdir('/tmp'), 'shm': os.listdir('/dev/shm'),
                    'path': '/tmp' in sys.path}
    """)
    assert ok(run(first)) == "done"
    assert ok(run(second)) == {"seterr": "warn", "dumps": True, "marker": False,
                               "env": False, "tmp": [], "shm": [], "path": False}


def test_the_rehearsals_leave_nothing_a_job_can_find(warm_daemon, run):
    """The zygote and every spare run a rehearsal job (runner.py, REHEARSAL) before a job
    arrives. Thawed, the collector lists every container object of the process (functions,
    DataFrames, Series; not strings or numbers): none of the rehearsal's may be among them.
    The job runs in a spare that rehearsed: every spare is ready and none had a job waiting."""
    warm_daemon.wait_warm()
    r = run(script("""
        import gc, os
        import pandas as pd
        def main():
            gc.unfreeze()
            mine = {main.__code__}
            objs = gc.get_objects()
            return {
                'exe': os.readlink('/proc/self/exe'),
                'functions': [f.__qualname__ for f in objs if type(f).__name__ == 'function'
                              and f.__code__.co_filename == '<script>'
                              and f.__code__ not in mine],
                'pandas': [type(o).__name__ for o in objs
                           if type(o) in (pd.DataFrame, pd.Series)],
            }
    """))
    assert ok(r) == {"exe": ZYGOTE_EXE, "functions": [], "pandas": []}, r
    assert (r["stdout"], r["stderr"]) == (b"", b""), r


def test_a_failing_rehearsal_is_logged_and_stays_out_of_jobs(start_daemon, tmp_path):
    """A rehearsal that raises (here: a runner whose REHEARSAL calls what numpy lacks) costs
    speed only. The zygote says so once in the daemon's log; jobs still run warm, and its
    traceback reaches neither the log's job lines nor any job's stderr."""
    with open(RUNNER) as f:
        src = f.read()
    assert src.count("np.mean(data['numbers'])") == 1
    broken = tmp_path / "runner.py"
    broken.write_text(src.replace("np.mean(data['numbers'])", "np.no_such_function()"))
    broken.chmod(0o644)
    d = start_daemon(runner=str(broken))
    d.wait_warm()
    assert ("pyexec-zygote: the rehearsal failed, warm jobs will be slower: error: module "
            "'numpy' has no attribute 'no_such_function'") in d.log()
    assert "Traceback" not in d.log()
    for _ in range(3):
        r = d.run(EXE)
        assert ok(r) == ZYGOTE_EXE
        assert (r["stdout"], r["stderr"]) == (b"", b""), r
    # The runner's reports are off only during a rehearsal: a job's own traceback still shows.
    r = d.run("def main():\n    raise ValueError('mine')\n")
    assert r["verdict"] == "error" and b"ValueError: mine" in r["stderr"], r


def test_a_job_sees_neither_the_zygote_nor_the_spares(warm_daemon, run):
    r = ok(run(script("""
        import os
        def main():
            pids = sorted(int(p) for p in os.listdir('/proc') if p.isdigit())
            return {'pids': pids, 'ppid': os.getppid(),
                    'env': sorted(open('/proc/1/environ').read().split('\\0'))[1:4]}
    """)))
    assert r["pids"] == [1] and r["ppid"] == 0
    assert r["env"] == ["HOME=/tmp", "LANG=C.UTF-8", "LC_ALL=C.UTF-8"], r["env"]


def test_the_zygote_keeps_five_capabilities_and_no_network(warm_daemon):
    z = zygote_pid(warm_daemon)
    st = read_status(z)
    # CAP_SETGID 6, CAP_SETUID 7, CAP_SETPCAP 8, CAP_NET_ADMIN 12, CAP_SYS_ADMIN 21
    want = (1 << 6) | (1 << 7) | (1 << 8) | (1 << 12) | (1 << 21)
    for field in ("CapPrm", "CapEff", "CapBnd"):
        assert int(st[field], 16) == want, (field, st[field])
    assert int(st["CapInh"], 16) == 0 and int(st["CapAmb"], 16) == 0
    assert st["NoNewPrivs"] == "1"
    # Its own network namespace, with nothing but lo; its own mount namespace, read-only root.
    assert os.readlink(f"/proc/{z}/ns/net") != os.readlink("/proc/self/ns/net")
    assert os.readlink(f"/proc/{z}/ns/mnt") != os.readlink("/proc/self/ns/mnt")
    with open(f"/proc/{z}/net/dev") as f:
        assert [l.split(":")[0].strip() for l in f.readlines()[2:]] == ["lo"]
    with open(f"/proc/{z}/mountinfo") as f:
        root = [l.split() for l in f if l.split()[4] == "/"]
    assert len(root) == 1 and "ro" in root[0][5].split(","), root
    with open(f"/proc/{z}/environ", "rb") as f:
        env = f.read().split(b"\0")
    assert not [e for e in env if e.startswith(b"PYEXEC_TEST_SECRET")], env


def test_the_zygote_holds_no_proc_tmp_or_shm_and_each_job_has_its_own(warm_daemon):
    """Once warm, the zygote has unmounted its /proc (a view of sandboxd's PID namespace),
    /tmp and /dev/shm: a spare has nothing of them to inherit, and mounts its own."""
    z = zygote_pid(warm_daemon)
    with open(f"/proc/{z}/mountinfo") as f:
        points = [l.split()[4] for l in f]
    assert "/" in points and "/usr/lib/python3.11" in points, points  # its mountinfo is read
    for p in ("/proc", "/tmp", "/dev/shm"):
        assert not [m for m in points if m == p or m.startswith(p + "/")], (p, points)
    # Not even through its working directory (a detached /tmp would live on there).
    assert os.stat(f"/proc/{z}/cwd").st_dev == os.stat(f"/proc/{z}/root").st_dev
    got = ok(warm_daemon.run(
        "import os\ndef main():\n"
        "    m = [l.split()[4] for l in open('/proc/self/mountinfo')]\n"
        "    return {'proc': m.count('/proc'), 'tmp': m.count('/tmp'), 'shm': m.count('/dev/shm'),"
        " 'masked': [p for p in ('/proc/kallsyms', '/proc/keys', '/proc/sys') if p in m],"
        " 'kallsyms': open('/proc/kallsyms').read(), 'pid1': os.getpid(),"
        " 'tmp_w': os.access('/tmp', os.W_OK), 'exe': os.readlink('/proc/self/exe')}\n"))
    # A warm job (the zygote's binary), with the /proc masks of every job.
    assert got == {"proc": 1, "tmp": 1, "shm": 1, "masked": ["/proc/kallsyms", "/proc/keys",
                   "/proc/sys"], "kallsyms": "", "pid1": 1, "tmp_w": True,
                   "exe": ZYGOTE_EXE}, got


def test_a_killed_zygote_is_replaced_and_jobs_run_cold_meanwhile(start_daemon):
    d = start_daemon()
    d.wait_warm()
    assert ok(d.run(EXE)) == ZYGOTE_EXE
    z = zygote_pid(d)
    d.mark_log()
    os.kill(z, signal.SIGKILL)
    wait_for(lambda: "zygote: exited (signal 9)" in d.log_since_mark(), 20,
             what="the daemon to notice")
    # Spares made before stay usable; then jobs run cold until the new zygote passes its
    # canary, and warm again after.
    exes = [ok(d.run(EXE)) for _ in range(8)]
    assert set(exes) <= {ZYGOTE_EXE, PYTHON_EXE}, exes
    wait_for(lambda: d.log_since_mark().count("warm path: verified") == 1, 60,
             what="a new zygote verified")
    d.wait_warm()
    assert zygote_pid(d) != z
    assert ok(d.run(EXE)) == ZYGOTE_EXE
    assert d.job_procs() == []


def test_a_killed_spare_is_replaced(start_daemon):
    d = start_daemon()
    d.wait_warm()
    z = zygote_pid(d)
    spares = sorted(warm_pids(d.pid, *d.uid_range) - {z})
    assert len(spares) == 4
    os.kill(spares[0], signal.SIGKILL)
    wait_for(lambda: spares[0] not in warm_pids(d.pid, *d.uid_range), 10,
             what="the spare to go")
    d.wait_warm()
    assert ok(d.run(EXE)) == ZYGOTE_EXE
    assert zygote_pid(d) == z


def test_cold_path_only(start_daemon):
    d = start_daemon("--warm-spares", "0")
    assert ok(d.run(EXE)) == PYTHON_EXE
    assert warm_pids(d.pid, *d.uid_range) == set()
    assert "zygote" not in d.log()


def test_spares_never_count_as_running_or_queued(warm_daemon):
    with warm_daemon.client() as c:
        pong = c.ping()
    assert (pong["running"], pong["queued"]) == (0, 0)


def test_a_burst_waits_for_spares_and_every_job_runs_warm(warm_daemon):
    """More jobs at once than spares: each waits for the next spare (admitted, not queued),
    none falls back to a cold start while the warm path is up."""
    n = 12
    with warm_daemon.client() as c:
        for i in range(1, n + 1):
            c.submit(i, EXE)
        got, _ = c.collect(list(range(1, n + 1)))
    exes = [json.loads(got[i][1]["result"]) for i in range(1, n + 1)]
    assert exes == [ZYGOTE_EXE] * n


def test_the_zygote_never_holds_a_script_or_result(warm_daemon, run):
    """The script goes to the spare on its own pipe; the zygote's fds are its control socket
    and the stdio sandboxd gave it."""
    marker = "zygote-must-not-see-%d" % os.getpid()
    assert ok(run(f"def main():\n    return '{marker}'\n")) == marker
    warm_daemon.wait_warm()  # the spares are refilled: no fds in flight to a new one
    z = zygote_pid(warm_daemon)
    fds = sorted(int(f) for f in os.listdir(f"/proc/{z}/fd"))
    assert fds == [0, 1, 2, 3], fds
    with open(f"/proc/{z}/cmdline", "rb") as f:
        assert marker.encode() not in f.read()


def test_the_zygote_shares_no_writable_memory_with_jobs(warm_daemon):
    """Jobs are forks of the zygote: a MAP_SHARED writable mapping in it would be one page
    every job (and the zygote) writes to. There is none; everything else is copy-on-write."""
    z = zygote_pid(warm_daemon)
    with open(f"/proc/{z}/maps") as f:
        shared = [l for l in f if "s" in l.split()[1] and "w" in l.split()[1]]
    assert shared == []


def rollup_kib(text, field):
    return next(int(l.split()[1]) for l in text.splitlines() if l.startswith(field + ":"))


def zygote_memory(pid):
    """(minor page faults so far, KiB in huge pages) of the zygote."""
    with open(f"/proc/{pid}/stat") as f:
        minflt = int(f.read().rsplit(")", 1)[1].split()[7])
    with open(f"/proc/{pid}/smaps_rollup") as f:
        return minflt, rollup_kib(f.read(), "AnonHugePages")


READY = re.compile(r"; (\d+) MiB of its heap in huge pages; free blocks taken: pymalloc "
                   r"(-?\d+), (-?\d+) left, glibc (-?\d+), (-?\d+) bytes left")


def ready_line(daemon):
    said = READY.findall(daemon.log())
    assert said, "no ready line from the zygote"
    return [int(x) for x in said[-1]]


def test_the_zygote_takes_its_heaps_free_blocks(warm_daemon):
    """Before it forks (zygote/seal.c): a job's new objects then go to pages of its own, not
    into gaps on pages it would have to copy. What that saves is CPU, which the benchmark
    shows; here, that both heaps were sealed and have nothing free left, as each one's own
    report says once it is done (pymalloc's, glibc's mallinfo2)."""
    _, py_taken, py_left, libc_taken, libc_left = ready_line(warm_daemon)
    assert py_taken >= 500 and py_left == 0, (py_taken, py_left)
    assert libc_taken >= 500 and libc_left == 0, (libc_taken, libc_left)


def thp_mode():
    """The host's transparent huge page mode ('always', 'madvise', 'never'), or None."""
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as f:
            return f.read().split("[")[1].split("]")[0]
    except (OSError, IndexError):
        return None


def test_the_zygotes_heap_is_in_huge_pages_and_a_job_copies_only_what_it_writes(
        warm_daemon, run):
    """The zygote moves its objects into huge pages before it serves (zygote/arenas.c,
    zygote/huge.c), so that each job's fork and exit walk fewer page tables. A job writing
    into one must still copy 4 KiB of it, not 2 MiB: its private memory stays that of a job
    without huge pages (about 4 MiB for the pandas example)."""
    kernel = tuple(int(x) for x in re.findall(r"\d+", os.uname().release)[:2])
    if kernel < (6, 1) or thp_mode() in (None, "never"):
        pytest.skip(f"no MADV_COLLAPSE here (Linux {os.uname().release}, transparent huge "
                    f"pages: {thp_mode()})")
    assert ready_line(warm_daemon)[0] >= 16
    assert zygote_memory(zygote_pid(warm_daemon))[1] >= 16 << 10
    # The pandas example, then what the job itself wrote (Private_Dirty: pages it copied or
    # made), from its own /proc.
    r = ok(run(script("""
        import numpy as np
        import pandas as pd
        def main():
            data = pd.DataFrame({'numbers': [1, 2, 3, 4, 5]})
            data['squares'] = data['numbers'] ** 2
            mean = float(np.mean(data['numbers']))
            with open('/proc/self/smaps_rollup') as f:
                return [mean, f.read()]
    """)))
    assert r[0] == 3.0
    assert rollup_kib(r[1], "Private_Dirty") < 16 << 10, r[1]


def test_the_zygote_runs_alone_and_forks_without_writing(warm_daemon, run):
    """One thread: so it forks its spares without the parent's at-fork hooks (zygote/main.c),
    which guard locks against other threads only. Those wrote to about 20 of its pages per
    spare, each a copy-on-write fault (the page was shared with the last spare) that also
    split a huge page: over 20 jobs it now takes a few faults per spare, and keeps its huge
    pages. (A library that started a thread at import would bring the hooks back.)"""
    warm_daemon.wait_warm()
    z = zygote_pid(warm_daemon)
    assert os.listdir(f"/proc/{z}/task") == [str(z)]
    faults, huge = zygote_memory(z)
    for _ in range(20):
        ok(run("def main():\n    return 1\n"))
    warm_daemon.wait_warm()
    faults_after, huge_after = zygote_memory(z)
    assert faults_after - faults < 5 * 20, (faults, faults_after)
    assert huge_after >= huge, (huge, huge_after)


def test_zygote_and_spares_die_with_the_daemon(start_daemon):
    d = start_daemon()
    d.wait_warm()
    warm = warm_pids(d.pid, *d.uid_range)
    assert len(warm) == 5
    d.proc.kill()
    d.proc.wait(30)

    def gone(pid):
        st = read_status(pid)
        return st is None or st.get("State", "").startswith(("Z", "X"))
    wait_for(lambda: all(gone(p) for p in warm), 10, what="the zygote and spares to die")


SLEEP2 = "import time\ndef main():\n    time.sleep(2)\n    return 'done'\n"


def test_zygote_dying_while_the_daemon_is_busy_is_survived(start_daemon):
    """Regression (review): the zygote died while sandboxd was stopped with a job's answer in;
    the refill after the answer asked the dead zygote, failed, discarded the spare, which
    asked again... until the stack overflowed. Now the failed ask marks the zygote down."""
    d = start_daemon()
    d.wait_warm()
    z = zygote_pid(d)
    old_spares = warm_pids(d.pid, *d.uid_range) - {z}
    with d.client() as c:
        c.submit(1, SLEEP2)
        time.sleep(0.7)
        os.kill(d.pid, signal.SIGSTOP)
        try:
            time.sleep(2.5)  # the job's frame arrives meanwhile
            os.kill(z, signal.SIGKILL)
            time.sleep(0.3)
        finally:
            os.kill(d.pid, signal.SIGCONT)
        got, _ = c.collect([1])
    assert ok(got[1][1]) == "done"
    assert d.alive()
    # A new zygote, and none of the old spares: its canary ran in one of its own.
    wait_for(lambda: d.log().count("warm path: verified") == 2, 60, what="a new zygote")
    d.wait_warm()
    assert zygote_pid(d) != z
    assert not (warm_pids(d.pid, *d.uid_range) & old_spares)
    assert ok(d.run(EXE)) == ZYGOTE_EXE


def test_a_job_never_gets_a_spare_that_just_died(start_daemon):
    """Regression (review): spares killed from outside (or by the host's OOM killer) just
    before a job arrived were adopted, and the job was told 'killed by signal 9'."""
    d = start_daemon()
    for _ in range(3):
        d.wait_warm()
        z = zygote_pid(d)
        for p in warm_pids(d.pid, *d.uid_range) - {z}:
            os.kill(p, signal.SIGKILL)
        r = d.run("def main():\n    return 1\n")
        assert (r["verdict"], r["result"]) == ("ok", "1"), r


def test_no_zombie_is_left_after_zygote_deaths(start_daemon):
    """Spares the zygote cloned but had not reported when it died are sandboxd's children with
    no pidfd: reaped all the same."""
    from conftest import children_of
    d = start_daemon()
    for _ in range(4):
        d.wait_warm()
        z = zygote_pid(d)
        with d.client() as c:
            for i in range(1, 5):
                c.submit(i, "def main():\n    return 1\n")
            time.sleep(0.05)
            os.kill(z, signal.SIGKILL)
            got, _ = c.collect([1, 2, 3, 4])
        assert all(got[i][1]["verdict"] == "ok" for i in got), got
    d.wait_warm()
    wait_for(lambda: not [k for k in children_of(d.pid) if k[1] == "Z"], 10,
             what="no zombie children of sandboxd")
