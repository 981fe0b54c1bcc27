"""Result integrity: what a script prints cannot pass for its result or for the daemons'
words, closing or garbling fds 0-4 and the result channel gives a clean answer or a clear
error, and a poisoned json module or monkeypatched builtins cannot make a reply the daemons did
not validate."""
import pytest

from hostile import HANG_MS, TIMED_OUT, Attacks, expect, result_of, script

attack = Attacks()

CORRUPTED = "Script execution error: the result channel was corrupted (%s)"

# Finds the runner's private copy of the result channel (the only fd at 63 or above) and
# frames a payload as the runner would.
CHANNEL = script("""
    import os
    def channel():
        fds = [int(f) for f in os.listdir('/proc/self/fd') if int(f) >= 63]
        assert len(fds) == 1, fds
        return fds[0]
    def frame(payload):
        return b'PXR1' + len(payload).to_bytes(4, 'big') + payload
""")

FORGED_REPLY = '{"result": {"admin": true}, "stdout": ""}'


@attack
def forged_result_printed_on_stdout(svc):
    """A reply-shaped JSON line and a well-formed result frame, both on stdout: they come
    back as printed text, and the result is what main() returned."""
    a = svc.execute(CHANNEL + script("""
        import sys
        def main():
            print(FORGED)
            sys.stdout.buffer.write(frame(b'{"status":"ok","result":{"admin":true}}'))
            sys.stdout.flush()
            return {'admin': False}
    """).replace("FORGED", repr(FORGED_REPLY)))
    payload = '{"status":"ok","result":{"admin":true}}'
    assert result_of(a, stdout=None) == {"admin": False}
    assert a.body["stdout"] == (FORGED_REPLY + "\n" + "PXR1\x00\x00\x00" + chr(len(payload))
                                + payload)


@attack
def forged_http_response_in_output(svc):
    """CRLFs, a status line and headers in stdout and stderr stay inside the JSON strings:
    one response, no injected header, the daemon's own verdict."""
    injected = ("\r\n\r\nHTTP/1.1 200 OK\r\nX-Injected: 1\r\nX-Pyexec-Verdict: forged\r\n"
                "Content-Length: 2\r\n\r\n{}")
    a = svc.execute(script("""
        import sys
        def main():
            sys.stdout.write(INJ)
            sys.stderr.write(INJ)
            raise ValueError(INJ)
    """).replace("INJ", repr(injected)), stderr=True)
    assert a.status == 400 and a.verdict == "error", a
    assert "X-Injected" not in a.headers
    assert a.body["stdout"] == injected and a.body["stderr"].startswith(injected), a
    assert a.body["error"] == "Script execution error: " + injected


@attack
def close_fds_0_to_4(svc):
    """fds 0-4 closed, then reused by files of the job's own: what is printed afterwards goes
    into the file now at fd 1, and the result channel is untouched."""
    a = svc.execute(script("""
        import os
        def main():
            print('partial')
            for fd in (0, 1, 2, 3, 4):
                try:
                    os.close(fd)
                except OSError:
                    pass
            fds = [os.open('/tmp/f%d' % i, os.O_RDWR | os.O_CREAT, 0o600) for i in range(5)]
            print('into a file')
            os.write(2, b'also into a file')
            return {'fds': fds, 'fd1': open('/tmp/f1').read(), 'fd2': open('/tmp/f2').read()}
    """))
    assert result_of(a, stdout="partial\n") == {"fds": [0, 1, 2, 3, 4], "fd1": "into a file\n",
                                                 "fd2": "also into a file"}


@attack
def hostile_stdout_and_stderr_objects(svc):
    """sys.stdout and sys.stderr replaced by objects whose flush() raises: the runner still
    sends the result."""
    a = svc.execute(script("""
        import sys
        class Hostile:
            def write(self, s):
                return len(s)
            def flush(self):
                raise RuntimeError('flush refused')
        def main():
            print('kept')
            sys.stdout = sys.__stdout__ = Hostile()
            sys.stderr = sys.__stderr__ = Hostile()
            print('swallowed')
            return 'result intact'
    """))
    assert result_of(a, stdout="kept\n") == "result intact"


@attack
def write_to_fd_4(svc):
    """fd 4 was the result channel when the runner started; it moved it away before the
    script ran, so the script hits EBADF."""
    a = svc.execute("import os\ndef main():\n    os.write(4, b'PXR1garbage')\n    return 1\n")
    expect(a, 400, {"error": "Script execution error: [Errno 9] Bad file descriptor",
                    "stdout": ""}, verdict="error")


@attack
def result_channel_dup2ed_onto_stdout(svc):
    """The private channel found and put on fd 1: what is printed lands before the frame."""
    a = svc.execute(CHANNEL + script("""
        def main():
            os.dup2(channel(), 1)
            print('junk on the channel')
            return 1
    """))
    expect(a, 400, {"error": CORRUPTED % "bad frame header", "stdout": ""}, verdict="error")


@attack
def garbage_on_the_result_channel(svc):
    a = svc.execute(CHANNEL + script("""
        def main():
            os.write(channel(), b'garbage, not a frame')
            return {'honest': True}
    """))
    expect(a, 400, {"error": CORRUPTED % "bad frame header", "stdout": ""}, verdict="error")


@attack
def close_the_result_channel(svc):
    a = svc.execute(CHANNEL + script("""
        def main():
            os.close(channel())
            return 1
    """))
    expect(a, 400, {"error": "Script execution error: the script exited with status 70 before "
                             "main() returned", "stdout": ""}, verdict="error")


@attack
def forked_child_returns_from_main_too(svc):
    """Two runners (parent and child) return from main(): only the job's first process (pid 1
    of its namespace) reports, so the child leaves without a frame and the parent's answer
    stands."""
    a = svc.execute(script("""
        import os
        def main():
            pid = os.fork()
            if pid == 0:
                return {'from': 'child'}
            os.waitpid(pid, 0)
            return {'from': 'parent'}
    """))
    expect(a, 200, {"result": {"from": "parent"}, "stdout": ""}, verdict="ok")


@attack
def forged_frame_claims_a_timeout(svc):
    """A hand-made frame with the daemon's own words as a bad_result: refused, so the API
    never says "timed out" for a script that did not."""
    a = svc.execute(CHANNEL + script("""
        FORGED = b'{"status":"bad_result","message":"Script execution timed out"}'
        def main():
            os.write(channel(), frame(FORGED))
            os._exit(0)
    """))
    expect(a, 400, {"error": CORRUPTED % "frame has no known status", "stdout": ""},
           verdict="error")


@attack
def forged_frame_with_extra_reply_fields(svc):
    """A frame that also carries "stdout" and "verdict" members, hoping they reach the reply."""
    a = svc.execute(CHANNEL + script("""
        FORGED = b'{"status":"ok","result":1,"stdout":"forged","verdict":"ok"}'
        def main():
            os.write(channel(), frame(FORGED))
            os._exit(0)
    """))
    expect(a, 400, {"error": CORRUPTED % "frame has no known status", "stdout": ""},
           verdict="error")


@attack
def forged_frame_nested_too_deeply(svc):
    a = svc.execute(CHANNEL + script("""
        FORGED = b'{"status":"ok","result":' + b'[' * 10000 + b']' * 10000 + b'}'
        def main():
            os.write(channel(), frame(FORGED))
            os._exit(0)
    """))
    expect(a, 400, {"error": CORRUPTED % "result nested too deeply", "stdout": ""},
           verdict="error")


@attack
def forged_frame_with_too_many_values(svc):
    """1.1 million array elements: refused before the root daemon builds a tree of them."""
    a = svc.execute(CHANNEL + script("""
        def main():
            os.write(channel(), frame(b'{"status":"ok","result":[' + b'0,' * 1100000 + b'0]}'))
            os._exit(0)
    """))
    expect(a, 400, {"error": CORRUPTED % "result has too many values", "stdout": ""},
           verdict="error")


@attack
def poisoned_encoder_emits_nan(svc):
    """The runner encodes with _json's C encoder; replaced, it writes NaN, which is no JSON."""
    a = svc.execute(script("""
        import _json
        def evil(*args, **kw):
            return lambda obj, level: ['{"status":"ok","result":NaN}']
        def main():
            _json.make_encoder = evil
            return 1
    """))
    expect(a, 400, {"error": CORRUPTED % "frame is not valid JSON", "stdout": ""},
           verdict="error")


@attack
def poisoned_json_module(svc):
    """The C encoder made to fail, so the runner falls back to `import json`, which is the
    script's own module by then, emitting a plausible frame with trailing bytes."""
    a = svc.execute(script("""
        import sys, _json
        class FakeJson:
            @staticmethod
            def dumps(obj, **kw):
                return '{"status":"ok","result":{"admin":true}}, "stdout": "forged"}'
        def refuse(*args, **kw):
            raise TypeError('no encoder today')
        def main():
            _json.make_encoder = refuse
            sys.modules['json'] = FakeJson
            return {'admin': False}
    """))
    expect(a, 400, {"error": CORRUPTED % "frame is not valid JSON", "stdout": ""},
           verdict="error")


@attack
def monkeypatched_builtins(svc):
    """type, isinstance and len replaced for the runner's conversion: the runner keeps its own
    references, bound before the script ran, so the object that is no JSON value is named."""
    a = svc.execute(script("""
        import builtins
        class Opaque:
            pass
        def main():
            builtins.type = lambda v, *a: str
            builtins.isinstance = lambda *a: True
            builtins.len = lambda v: 0
            return {'obj': Opaque()}
    """))
    expect(a, 400, {"error": "Result is not JSON-serializable: Opaque at result['obj']",
                    "stdout": ""}, verdict="bad_result")


@attack
def runner_exit_disabled_and_atexit_hangs(svc):
    """posix._exit replaced and an atexit handler that sleeps: the runner keeps its own _exit
    (and sandboxd kills the job once the frame is in), so main()'s value is the answer and
    nothing of the job is left."""
    a = svc.execute(script("""
        import atexit, posix, time
        def later():
            time.sleep(1000)
        def main():
            posix._exit = lambda code: None
            atexit.register(later)
            return {'x': 1}
    """), timeout_ms=HANG_MS)
    expect(a, 200, {"result": {"x": 1}, "stdout": ""}, verdict="ok")


@attack
def exit_before_returning(svc):
    a = svc.execute("import os\ndef main():\n    print('bye')\n    os._exit(0)\n")
    expect(a, 400, {"error": "Script execution error: the script exited with status 0 before "
                             "main() returned", "stdout": "bye\n"}, verdict="error")


@attack
def exception_whose_str_raises(svc):
    a = svc.execute(script("""
        class Sneaky(Exception):
            def __str__(self):
                raise RuntimeError('no message for you')
        def main():
            raise Sneaky()
    """))
    expect(a, 400, {"error": "Script execution error: Sneaky", "stdout": ""}, verdict="error")


@attack
def bytes_that_are_not_text_in_the_output(svc):
    """Invalid UTF-8, NULs, escapes and a lone surrogate in stdout and in the result: the
    reply is valid JSON, invalid bytes become U+FFFD, the rest arrives exactly."""
    a = svc.execute(script("""
        import os
        def main():
            os.write(1, b'\\xff\\xfe bad \\x00 nul \\x1b[2J esc \\xe2\\x80\\xa8 ls\\n')
            return ['\\x00', '\\u2028', '\\ud800', '</script>']
    """))
    assert result_of(a, stdout="\ufffd\ufffd bad \x00 nul \x1b[2J esc \u2028 ls\n") == \
        ["\x00", "\u2028", "\ufffd", "</script>"]


@pytest.mark.parametrize("case", attack, ids=Attacks.id)
def test_attack(svc, case):
    case(svc)
    svc.assert_intact()
