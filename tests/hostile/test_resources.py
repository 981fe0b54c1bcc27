"""Resources: tasks, memory, disk, inodes, files, output and CPU are bounded per job, and
nothing a job starts outlives it (its deadline, or main() returning)."""
import concurrent.futures
import errno

import pytest

from hostile import (HANG_MS, HTTP_TIMEOUT, OOM, TIMED_OUT, Attacks, expect, job_cpu_limit,
                     result_of, script, wait_for)

attack = Attacks()
MiB = 1 << 20


# ---- tasks ------------------------------------------------------------------------------------

@attack
def fork_bomb(svc):
    """Every process forks for ever. The pids cgroup stops it at 128 tasks; the deadline (or
    the memory limit, whichever the 128 interpreters reach first) ends it."""
    a = svc.execute(script("""
        import os
        def main():
            while True:
                try:
                    os.fork()
                except OSError:
                    pass
    """), timeout_ms=HANG_MS)
    assert a.status == 400 and a.body in ({"error": TIMED_OUT, "stdout": ""},
                                          {"error": OOM, "stdout": ""}), a


@attack
def fork_until_refused(svc):
    a = svc.execute(script("""
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
                    time.sleep(60)
                    os._exit(0)
                n += 1
            return {'forked': n, 'errno': err}
    """))
    got = result_of(a)
    assert got["errno"] == errno.EAGAIN and 64 <= got["forked"] < 128, got


@attack
def threads_until_refused(svc):
    """Threads are tasks too: the same cgroup bound."""
    a = svc.execute(script("""
        import threading, time
        def main():
            n = 0
            try:
                for i in range(1000):
                    threading.Thread(target=time.sleep, args=(60,), daemon=True).start()
                    n += 1
            except RuntimeError as e:
                return {'threads': n, 'error': str(e)}
            return {'threads': n}
    """))
    got = result_of(a)
    assert got["error"] == "can't start new thread" and 64 <= got["threads"] < 128, got


# ---- memory -----------------------------------------------------------------------------------

@attack
def memory_in_one_process(svc):
    a = svc.execute("def main():\n    x = b'\\x01' * (1 << 30)\n    return len(x)\n")
    expect(a, 400, {"error": OOM, "stdout": ""}, verdict="oom")
    assert int(a.headers["X-Pyexec-Peak-Memory"]) <= 520 * MiB, a.headers


@attack
def memory_in_many_processes(svc):
    """Six children of 150 MB each, none over the limit alone: the cgroup counts them
    together, and the OOM ends the whole job."""
    a = svc.execute(script("""
        import os, time
        def main():
            kids = []
            for i in range(6):
                pid = os.fork()
                if pid == 0:
                    buf = b'\\x01' * (150 << 20)
                    time.sleep(60)
                    os._exit(0)
                kids.append(pid)
            for pid in kids:
                os.waitpid(pid, 0)
            return 'all six fitted'
    """))
    expect(a, 400, {"error": OOM, "stdout": ""}, verdict="oom")


@attack
def memory_in_a_child_the_parent_survives(svc):
    """Only a child goes over; the parent would carry on and return. An OOM of any task ends
    the whole job (memory.oom.group, emulated on cgroup v1)."""
    a = svc.execute(script("""
        import os
        def main():
            pid = os.fork()
            if pid == 0:
                x = b'\\x01' * (1 << 30)
                os._exit(0)
            print('child ended with', os.waitpid(pid, 0)[1])
            return 'parent carried on'
    """))
    expect(a, 400, {"error": OOM, "stdout": ""}, verdict="oom")


@attack
def tmpfs_pages_count_as_memory(svc):
    """60 MiB in /tmp, 60 MiB in /dev/shm and 420 MiB in the heap: alone the heap fits, but
    the tmpfs pages are charged to the job's memory cgroup too."""
    a = svc.execute(script("""
        def main():
            chunk = b'\\x02' * (1 << 20)
            for path in ('/tmp/fill', '/dev/shm/fill'):
                with open(path, 'wb') as f:
                    for i in range(60):
                        f.write(chunk)
            heap = b'\\x01' * (420 << 20)
            return 'all fitted'
    """))
    expect(a, 400, {"error": OOM, "stdout": ""}, verdict="oom")


# ---- disk, inodes, files ----------------------------------------------------------------------

FILL = script("""
    import os
    def main():
        chunk = b'\\1' * (1 << 20)
        written, err = 0, None
        fd = os.open(PATH, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            while written < (200 << 20):
                written += os.write(fd, chunk)
        except OSError as e:
            err = e.errno
        return {'errno': err, 'size': os.fstat(fd).st_size}
""")


@attack
def fill_tmp(svc):
    got = result_of(svc.execute(FILL.replace("PATH", "'/tmp/big'")))
    assert got["errno"] in (errno.ENOSPC, errno.EFBIG) and 60 * MiB <= got["size"] <= 64 * MiB, \
        got


@attack
def fill_dev_shm(svc):
    got = result_of(svc.execute(FILL.replace("PATH", "'/dev/shm/big'")))
    assert got["errno"] in (errno.ENOSPC, errno.EFBIG) and 60 * MiB <= got["size"] <= 64 * MiB, \
        got


@attack
def exhaust_tmp_inodes(svc):
    a = svc.execute(script("""
        import os
        def main():
            n, err = 0, None
            try:
                while n < 100000:
                    os.close(os.open('/tmp/f%d' % n, os.O_WRONLY | os.O_CREAT, 0o600))
                    n += 1
            except OSError as e:
                err = e.errno
            return {'errno': err, 'files': n}
    """))
    got = result_of(a)
    assert got["errno"] == errno.ENOSPC and 4000 <= got["files"] < 4096, got


@attack
def exhaust_file_descriptors(svc):
    a = svc.execute(script("""
        import os
        def main():
            fds, err = [], None
            try:
                while len(fds) < 100000:
                    fds.append(os.open('/dev/null', os.O_RDONLY))
            except OSError as e:
                err = e.errno
            return {'errno': err, 'highest': max(fds)}
    """))
    got = result_of(a)
    assert got["errno"] == errno.EMFILE and 64 <= got["highest"] < 1024, got


# ---- output -----------------------------------------------------------------------------------

@attack
def stdout_flood(svc):
    """200 MiB of stdout: the first 1 MiB comes back, marked truncated, with the result."""
    a = svc.execute(script("""
        import os
        def main():
            chunk = b'A' * (1 << 20)
            for i in range(200):
                os.write(1, chunk)
            return 'flooded'
    """))
    assert result_of(a, stdout=None) == "flooded"
    assert a.body["stdout"] == "A" * MiB, len(a.body["stdout"])
    assert a.headers["X-Pyexec-Truncated"] == "stdout"


@attack
def endless_stdout_and_stderr_flood(svc):
    """Both streams written for ever, from two threads: the deadline ends it, and what comes
    back is capped at 1 MiB and 64 KiB."""
    a = svc.execute(script("""
        import os, threading
        def err():
            while True:
                os.write(2, b'E' * 65536)
        def main():
            threading.Thread(target=err, daemon=True).start()
            while True:
                os.write(1, b'O' * 65536)
    """), timeout_ms=HANG_MS, stderr=True)
    assert a.status == 400 and a.body == {"error": TIMED_OUT, "stdout": "O" * MiB,
                                          "stderr": "E" * 65536}, a
    assert a.headers["X-Pyexec-Truncated"] == "stdout,stderr"


@attack
def child_keeps_writing_after_main_returns(svc):
    """A child holds the stdout pipe and writes on after main() returned: the answer does not
    wait for EOF (which would come only at the deadline)."""
    a = svc.execute(script("""
        import os, time
        def main():
            if os.fork() == 0:
                while True:
                    os.write(1, b'x')
                    time.sleep(0.001)
            return 'returned'
    """))
    assert result_of(a, stdout=None) == "returned"
    assert a.verdict == "ok"


# ---- CPU --------------------------------------------------------------------------------------

def spin_on_one_cpu(svc, src):
    """Runs a job that spins until its deadline. While it runs, its cgroup must allow exactly
    one CPU (read on the host, whatever the load); afterwards its CPU time must fit about
    one CPU too: on 2 cores an unbounded job uses about twice its wall time, and the margin
    leaves room for accounting granularity (a busy host only makes the job use less)."""
    with concurrent.futures.ThreadPoolExecutor(1) as ex:
        fut = ex.submit(svc.execute, src, timeout_ms=HANG_MS)
        pid = wait_for(svc.job_procs, HTTP_TIMEOUT, interval=0.02, what="the job")[0][0]
        limit = job_cpu_limit(pid)
        a = fut.result(HTTP_TIMEOUT)
    expect(a, 400, {"error": TIMED_OUT, "stdout": ""}, verdict="timeout")
    assert limit == 1.0, limit
    wall, cpu = int(a.headers["X-Pyexec-Wall-Ms"]), int(a.headers["X-Pyexec-Cpu-Ms"])
    assert cpu <= 1.5 * wall + 300, (cpu, wall)


@attack
def cpu_in_threads(svc):
    spin_on_one_cpu(svc, script("""
        import threading
        def spin():
            while True:
                pass
        def main():
            for i in range(8):
                threading.Thread(target=spin, daemon=True).start()
            spin()
    """))


@attack
def cpu_in_processes(svc):
    spin_on_one_cpu(svc, script("""
        import os
        def main():
            for i in range(4):
                if os.fork() == 0:
                    break
            while True:
                pass
    """))


# ---- the deadline and what outlives main() ----------------------------------------------------

@attack
def sleeping_and_daemonised_children_past_the_deadline(svc):
    """A sleeping child and a setsid'd grandchild that ignores the polite signals: all three
    processes are seen on the host while the job runs, none after the timeout answer."""
    src = script("""
        import os, signal, time
        def main():
            if os.fork() == 0:
                time.sleep(1000)
                os._exit(0)
            pid = os.fork()
            if pid == 0:
                os.setsid()
                if os.fork() == 0:
                    for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
                        signal.signal(s, signal.SIG_IGN)
                    time.sleep(1000)
                os._exit(0)
            os.waitpid(pid, 0)
            time.sleep(1000)
    """)
    with concurrent.futures.ThreadPoolExecutor(1) as ex:
        fut = ex.submit(svc.execute, src, timeout_ms=3000)
        wait_for(lambda: len(svc.job_procs()) >= 3, HTTP_TIMEOUT, interval=0.02,
                 what="the job's three processes on the host")
        a = fut.result(HTTP_TIMEOUT)
    expect(a, 400, {"error": TIMED_OUT, "stdout": ""}, verdict="timeout")


@attack
def daemonised_grandchild_left_behind_after_return(svc):
    """main() returns at once, leaving a detached grandchild that ignores SIGTERM/SIGHUP: the
    job ends with main() and takes it along (checked after the answer)."""
    a = svc.execute(script("""
        import os, signal, time
        def main():
            pid = os.fork()
            if pid == 0:
                os.setsid()
                if os.fork() == 0:
                    for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
                        signal.signal(s, signal.SIG_IGN)
                    while True:
                        time.sleep(1)
                os._exit(0)
            os.waitpid(pid, 0)
            return 'left a daemon behind'
    """))
    assert result_of(a) == "left a daemon behind"


@attack
def stopped_and_zombie_children_left_behind(svc):
    """A child stopped with SIGSTOP and 50 unreaped zombies at return."""
    a = svc.execute(script("""
        import os, signal
        def main():
            if os.fork() == 0:
                os.kill(os.getpid(), signal.SIGSTOP)
                os._exit(0)
            for i in range(50):
                if os.fork() == 0:
                    os._exit(0)
            return 'left them'
    """))
    assert result_of(a) == "left them"


@attack
def ignore_every_signal_and_sleep(svc):
    """Signals a job can catch or ignore do not count: the deadline is SIGKILL."""
    a = svc.execute(script("""
        import signal, time
        def main():
            for s in signal.valid_signals():
                try:
                    signal.signal(s, signal.SIG_IGN)
                except (OSError, ValueError):
                    pass
            signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
            time.sleep(1000)
    """), timeout_ms=HANG_MS)
    expect(a, 400, {"error": TIMED_OUT, "stdout": ""}, verdict="timeout")


@pytest.mark.parametrize("case", attack, ids=Attacks.id)
def test_attack(svc, case):
    case(svc)
    svc.assert_intact()
