"""pyexec runner: runs one untrusted script inside a jail built by sandboxd.

sandboxd execs `python3.11 -I -S -B -u runner.py` with cwd /tmp, stdin /dev/null, stdout and
stderr on pipes, fd 3 = the script source (read to EOF) and fd 4 = the result channel. The
runner checks that the script binds `main` at module level, runs it as module __script__, calls
main(),
converts the return value to JSON and writes exactly one frame on the result channel:

    b"PXR1" + payload length (4 bytes, big-endian) + UTF-8 JSON payload, one of
    {"status":"ok","result":<value>}     {"status":"no_main"}
    {"status":"error","message":"..."}   {"status":"bad_result","message":"..."}
    {"status":"exit","code":N}

then calls os._exit(0) at once: no atexit handlers, no waiting for threads the script started.
If the frame cannot be written it exits with 70 (EX_SOFTWARE) and the daemon sees no frame.
The runner never writes to stdout; tracebacks go to stderr. The conversion table is in
pyrunner/README.md and in _Converter below.

Cost matters (one fresh interpreter per job), so the top level imports only modules that are
builtin or already loaded at startup; everything else (traceback, asyncio, datetime) is
imported when a job needs it, and numpy/pandas are never imported here: if the script did not
import them, its result cannot contain their objects. `posix` is the module `os` re-exports
(posix.write is os.write), used to save importing os.
"""

import _ast
import _json
import builtins
import io
import sys

import posix

# The script runs in this interpreter and may replace builtins (type, isinstance, len...) or
# posix functions; the runner uses its own references, bound here before any script ran.
globals().update({k: v for k, v in vars(builtins).items() if not k.startswith("__")})
_exit, _write, _getpid = posix._exit, posix.write, posix.getpid

SCRIPT_FD = 3
RESULT_FD = 4
SCRIPT_NAME = "<script>"
FRAME_MAGIC = b"PXR1"
MAX_PAYLOAD = 16 * 1024 * 1024  # the payload of one frame, bytes; the daemon's cap too
MAX_DEPTH = 64  # containers nested deeper than this are refused
MAX_VALUES = 1000000  # array elements plus object keys and values (sandboxd's limit too)
MAX_MESSAGE = 4000  # bytes of an error message; the daemon's is 4096 with its prefix
EXIT_NO_CHANNEL = 70  # the frame could not be written: the daemon reports "no result"
RUNNER_PID = None  # set by runner_main(): the process that reports
# The private copy of the result fd is placed at or above this number so that the fds the
# script opens (3, 4, 5, ...) are never it by accident.
PRIVATE_FD_MIN = 63


# --- start-up --------------------------------------------------------------------------------


def isolated_path():
    """The stdlib dirs plus Debian's dist-packages; never cwd or the runner's directory.

    Derived from the interpreter's own prefix, e.g. for /usr/bin/python3.11: /usr/lib/python311.zip,
    /usr/lib/python3.11, /usr/lib/python3.11/lib-dynload, /usr/lib/python3/dist-packages.
    """
    major, minor = sys.version_info[:2]
    lib = "%s/%s" % (sys.base_prefix.rstrip("/"), sys.platlibdir)
    stdlib = "%s/python%d.%d" % (lib, major, minor)
    return [
        "%s/python%d%d.zip" % (lib, major, minor),
        stdlib,
        stdlib + "/lib-dynload",
        "%s/lib/python3/dist-packages" % sys.base_prefix.rstrip("/"),
    ]


def take_result_channel():
    """Move the result channel to a private close-on-exec fd and close fd 4.

    The script then cannot hit the channel by writing to fd 4 (it gets EBADF, or whatever it
    opened there itself), closing or replacing fd 4 does not matter, and processes the script
    execs do not inherit the channel. A script that goes looking for the private fd can still
    write to it: the daemon treats a malformed channel as an error, and a whole forged frame
    only claims what the script could have returned itself.
    """
    try:
        import fcntl

        fd = fcntl.fcntl(RESULT_FD, fcntl.F_DUPFD_CLOEXEC, PRIVATE_FD_MIN)
    except OSError:
        fd = posix.dup(RESULT_FD)  # RLIMIT_NOFILE below the minimum: any private fd will do
    posix.close(RESULT_FD)
    return fd


def read_script():
    chunks = []
    while True:
        chunk = posix.read(SCRIPT_FD, 1 << 16)
        if not chunk:
            break
        chunks.append(chunk)
    posix.close(SCRIPT_FD)
    return b"".join(chunks)


def setup_stdio():
    """Each write on sys.stdout/sys.stderr must reach fd 1/2 at once, in order with os.write.

    With -u Python already gives a TextIOWrapper with write_through over an unbuffered FileIO;
    without it (or with a buffered layer) the streams are rebuilt that way. Output is UTF-8.
    """
    for name, fd in (("stdout", 1), ("stderr", 2)):
        stream = getattr(sys, name)
        if stream is None:
            continue  # the fd was closed when we started: leave it so
        errors = getattr(stream, "errors", None) or "backslashreplace"
        if isinstance(getattr(stream, "buffer", None), io.FileIO):
            stream.reconfigure(encoding="utf-8", errors=errors, write_through=True)
            continue
        stream = io.TextIOWrapper(
            io.FileIO(fd, "w", closefd=False), encoding="utf-8", errors=errors,
            line_buffering=True, write_through=True)
        setattr(sys, name, stream)
        setattr(sys, "__%s__" % name, stream)


# --- output helpers --------------------------------------------------------------------------


def write_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[_write(fd, view):]


def flush_stdio():
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            stream.flush()
        except BaseException:  # closed, replaced by something odd, or None
            pass


def to_stderr(text):
    """Straight to fd 2, since the script may have replaced or closed sys.stderr."""
    if _rehearsing:
        return  # fd 2 is sandboxd's log (zygote) or the job's stderr (spare): see rehearse()
    flush_stdio()
    try:
        write_all(2, text.encode("utf-8", "backslashreplace"))
    except OSError:
        pass


def clip_message(text):
    data = text.encode("utf-8", "replace")
    if len(data) <= MAX_MESSAGE:
        return text
    return data[:MAX_MESSAGE - 3].decode("utf-8", "ignore") + "\u2026"


def exception_message(exc):
    """str(exc), or the type name if that is empty; str() is script code and may fail."""
    try:
        text = str(exc)
    except BaseException:
        text = ""
    if type(text) is not str or not text:
        text = type(exc).__name__
    # The daemon shows messages as C strings: a NUL would end the text there.
    return clip_message(text.replace("\x00", "\\x00"))


# --- the script's source in tracebacks ---------------------------------------------------------


class LinecacheHook:
    """Puts the script's source into linecache when linecache is first imported.

    Importing linecache eagerly costs about 6 ms (tokenize, re, enum), as much as the rest of a
    hello-world job, so this meta-path finder waits for the first import of it by the script
    (traceback, warnings, logging) or by the runner's own error report.
    """

    def __init__(self, entry):
        self.entry = entry

    def find_spec(self, name, path=None, target=None):
        if name != "linecache":
            return None
        try:
            sys.meta_path.remove(self)
        except ValueError:
            pass
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            spec = find(name, path, target) if find is not None else None
            if spec is not None:
                break
        else:
            return None
        loader = spec.loader
        if loader is None or isinstance(loader, type):
            return spec  # a class-level loader (frozen, builtin): leave it alone
        run = loader.exec_module
        entry = self.entry

        def exec_module(module):
            run(module)
            module.cache.setdefault(SCRIPT_NAME, entry)

        loader.exec_module = exec_module
        return spec


def linecache_entry(source):
    lines = source.splitlines(True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    return (len(source), None, lines, SCRIPT_NAME)  # mtime None: checkcache() keeps it


def report_exception(exc, entry):
    """Print a traceback to stderr that starts at the script's first frame."""
    try:
        import traceback

        if entry is not None:
            sys.modules["linecache"].cache[SCRIPT_NAME] = entry
        tb = exc.__traceback__
        while tb is not None and tb.tb_frame.f_code.co_filename != SCRIPT_NAME:
            tb = tb.tb_next
        exc.__traceback__ = tb
        to_stderr("".join(traceback.format_exception(exc)))
    except BaseException:
        to_stderr("%s: %s\n" % (type(exc).__name__, exception_message(exc)))


# --- main() detection ------------------------------------------------------------------------


def binds_main(tree):
    """True if the module body may bind the name `main` at module level.

    Looks through if/else, try, with, for, while and match blocks, and through the parts of
    def/class/lambda that run in module scope (decorators, defaults, bases, annotations), but
    not into function or class bodies. It errs on the side of True (a star import, a name bound
    only inside a comprehension): the namespace is checked again after the body has run.
    """
    stack = list(tree.body)
    while stack:
        node = stack.pop()
        kind = type(node)
        if kind is _ast.FunctionDef or kind is _ast.AsyncFunctionDef or kind is _ast.ClassDef:
            if node.name == "main":
                return True
            stack.extend(node.decorator_list)
            if kind is _ast.ClassDef:
                stack.extend(node.bases)
                stack.extend(node.keywords)
            else:
                stack.append(node.args)
                if node.returns is not None:
                    stack.append(node.returns)
            continue
        if kind is _ast.Lambda:
            stack.append(node.args)
            continue
        if kind is _ast.Name:
            if node.id == "main" and type(node.ctx) is _ast.Store:
                return True
            continue
        if kind is _ast.Import or kind is _ast.ImportFrom:
            for alias in node.names:
                bound = alias.asname or alias.name
                if kind is _ast.Import:
                    bound = bound.partition(".")[0]  # `import main.sub` binds main
                if bound == "main" or alias.name == "*":
                    return True
            continue
        if kind is _ast.MatchAs or kind is _ast.MatchStar or kind is _ast.ExceptHandler:
            if node.name == "main":
                return True
        elif kind is _ast.MatchMapping:
            if node.rest == "main":
                return True
        elif kind is _ast.AnnAssign and node.value is None and type(node.target) is _ast.Name:
            stack.append(node.annotation)  # `main: T` alone binds nothing
            continue
        for field in node._fields:
            child = getattr(node, field, None)
            if isinstance(child, _ast.AST):
                stack.append(child)
            elif type(child) is list:
                stack.extend(c for c in child if isinstance(c, _ast.AST))
    return False


# --- result conversion -----------------------------------------------------------------------


class BadResult(Exception):
    """The return value cannot become JSON; path collects the location while unwinding."""

    def __init__(self, what, path_known=True):
        super().__init__(what)
        self.what = what
        self.path = [] if path_known else None

    def message(self):
        if self.path is None:
            return self.what
        where = "result" + "".join("[%r]" % key for key in reversed(self.path))
        return clip_message("%s at %s" % (self.what, where))


def not_serializable(obj, note=""):
    return BadResult("Result is not JSON-serializable: %s%s" % (type(obj).__name__, note))


MODULE_NAME = "__script__"
_INT_MIN, _INT_MAX = -(1 << 63), (1 << 63) - 1  # what a 64-bit JSON integer holds


class Converter:
    """Turns main()'s return value into plain JSON types, one documented rule per type:

    str, int, float, bool, None        as they are (subclasses: their plain value); an int
                                       beyond signed 64 bits becomes a float
    float NaN, +inf, -inf              null (JSON has no such numbers)
    dict                               object; keys: str kept, int/float/bool/None as
                                       json.dumps writes them, numpy bool/int/float keys via
                                       their Python value; other key types are refused
    list, tuple                        array
    numpy bool_/integer/floating       .item(), then as the Python value
    numpy datetime64                   ISO 8601 string (precision of its unit); NaT -> null
    numpy ndarray                      nested arrays (.tolist(); datetime64 elements as above)
    pandas Series                      object {str(index label): value}
    pandas DataFrame                   array of row objects {str(column): value}
    pandas Timestamp, datetime, date,  .isoformat()
    time
    pandas NaT, NA                     null
    anything else                      bad_result "Result is not JSON-serializable: <type>"
    """

    def __init__(self):
        self.budget = MAX_PAYLOAD  # a lower bound on the JSON size still allowed
        self.values = MAX_VALUES  # array elements, object keys and values still allowed
        self.active = set()  # ids of the containers on the current path: cycles
        np = sys.modules.get("numpy")
        pd = sys.modules.get("pandas")
        self.np = np if getattr(np, "generic", None) is not None else None
        self.pd = pd if getattr(pd, "DataFrame", None) is not None else None
        self.dt = None

    def spend(self, n):
        self.budget -= n
        if self.budget < 0:
            raise BadResult("Result is too large (over %d bytes)" % MAX_PAYLOAD, False)

    def convert(self, v, depth=0):
        t = type(v)
        if t is str:
            self.spend(len(v))
            return v
        if t is bool or v is None:
            return v
        if t is int:
            return v if _INT_MIN <= v <= _INT_MAX else self.big_int(v)
        if t is float:
            return v if v - v == 0.0 else None  # NaN - NaN and inf - inf are NaN
        if t is list or t is tuple:
            return self.sequence(v, v, depth)
        if t is dict:
            return self.mapping(v, v.items(), depth)
        return self.other(v, depth)

    def big_int(self, v):
        # Integers beyond signed 64 bits become floats: the daemon's and the gateway's JSON
        # parsers hold 64-bit integers, and JSON readers in most languages hold doubles.
        try:
            return float(v)
        except OverflowError:
            raise not_serializable(v, " (too large for a JSON number)")

    def enter(self, v, depth):
        if depth >= MAX_DEPTH:
            raise BadResult("Result is nested too deeply (over %d levels)" % MAX_DEPTH)
        if id(v) in self.active:
            raise BadResult("Result contains a circular reference")
        self.active.add(id(v))

    # The size budget is a lower bound on the encoded size: a container counts its brackets,
    # commas and one byte per element, less the one byte its parent counted for it; a string
    # counts its length, a dict key its length plus quotes and colon. So an explosion of shared
    # references stops early, and nothing under the real limit is refused.

    def count(self, n):
        # sandboxd refuses frames of more values than this before parsing them (a parsed
        # value costs the root daemon ~100 bytes); say so here, with the limit.
        self.values -= n
        if self.values < 0:
            raise BadResult("Result has too many values (over %d)" % MAX_VALUES, False)

    def sequence(self, owner, items, depth):
        self.enter(owner, depth)
        self.spend(2 * len(items) or 1)
        self.count(len(items))
        out = []
        append = out.append
        convert = self.convert
        i = 0
        try:
            for i, x in enumerate(items):
                t = type(x)
                if t is int and _INT_MIN <= x <= _INT_MAX or t is bool or x is None:
                    append(x)
                elif t is float:
                    append(x if x - x == 0.0 else None)
                else:
                    append(convert(x, depth + 1))
        except BadResult as e:
            if e.path is not None:
                e.path.append(i)
            raise
        self.active.discard(id(owner))
        return out

    def mapping(self, owner, items, depth):
        self.enter(owner, depth)
        self.spend(5 * len(owner) or 1)
        self.count(2 * len(owner))
        out = {}
        for key, x in items:
            where = key  # the path shows plain keys as written in Python: result[1]
            if type(key) is not str:
                key = self.key(key)  # a bad key is reported at the dict's own path
                if type(where) not in (int, float, bool, type(None)):
                    where = key
            if "\x00" in key:
                # JSON allows it, but the daemons' parser (jansson) refuses U+0000 in keys.
                raise not_serializable(key, " (dict key with a NUL character)")
            self.spend(len(key))
            try:
                out[key] = self.convert(x, depth + 1)
            except BadResult as e:
                if e.path is not None:
                    e.path.append(where)
                raise
        self.active.discard(id(owner))
        return out

    def key(self, k):
        """A dict key as json.dumps writes it (it would write NaN and Infinity too)."""
        np = self.np
        if np is not None and isinstance(k, (np.bool_, np.integer, np.floating)):
            if isinstance(k, np.timedelta64):
                raise not_serializable(k, " (dict key)")
            k = k.item()
        if isinstance(k, str):
            return str.__str__(k)
        if k is None:
            return "null"
        if k is True or k is False:
            return "true" if k else "false"
        if isinstance(k, int):
            try:
                return int.__repr__(k)
            except ValueError:
                raise not_serializable(k, " (dict key over %d digits)"
                                       % sys.get_int_max_str_digits())
        if isinstance(k, float):
            if k != k:
                return "NaN"
            if k in (float("inf"), float("-inf")):
                return "Infinity" if k > 0 else "-Infinity"
            return float.__repr__(k)
        raise not_serializable(k, " (dict key)")

    def other(self, v, depth):
        """Everything that is not exactly one of the plain types."""
        if isinstance(v, str):
            return self.convert(str.__str__(v))
        if isinstance(v, int):  # IntEnum and friends
            return self.convert(int.__index__(v))
        if isinstance(v, float):  # also numpy float64
            return self.convert(float.__float__(v))
        if isinstance(v, (list, tuple)):
            return self.sequence(v, v, depth)
        if isinstance(v, dict):  # OrderedDict, defaultdict, Counter
            return self.mapping(v, v.items(), depth)
        np = self.np
        if np is not None:
            if isinstance(v, np.generic):
                return self.numpy_scalar(v)
            if isinstance(v, np.ndarray):
                return self.ndarray(v, depth)
        pd = self.pd
        if pd is not None:
            if v is pd.NaT or v is pd.NA:
                return None
            if isinstance(v, pd.Series):
                return self.mapping(v, ((str(label), x) for label, x in v.items()), depth)
            if isinstance(v, pd.DataFrame):
                return self.dataframe(v, depth)
        dt = self.dt
        if dt is None:
            import datetime as dt

            self.dt = dt
        if isinstance(v, (dt.date, dt.time)):  # datetime and pandas Timestamp are dates
            return self.convert(v.isoformat())
        raise not_serializable(v)

    def numpy_scalar(self, v):
        np = self.np
        if isinstance(v, np.datetime64):
            return None if np.isnat(v) else self.convert(str(np.datetime_as_string(v)))
        if isinstance(v, np.timedelta64):  # a numpy integer, but .item() loses the unit
            raise not_serializable(v)
        if isinstance(v, np.floating):
            return self.convert(float(v))  # .item() keeps longdouble as numpy: round it
        if isinstance(v, (np.bool_, np.integer)):
            return self.convert(v.item())
        if isinstance(v, np.str_):
            return self.convert(str(v))
        raise not_serializable(v)  # complex, timedelta64, bytes_, void

    def ndarray(self, v, depth):
        np = self.np
        if 2 * v.size > self.budget:  # before .tolist() builds it all
            self.spend(2 * v.size)
        self.enter(v, depth)  # an object array may hold itself
        array = v
        if v.dtype.kind == "M":
            v = np.where(np.isnat(v), None, np.datetime_as_string(v).astype(object))
        elif v.dtype.kind == "m":
            raise not_serializable(v.dtype.type(0))
        items = v.tolist()
        if type(items) is not list:  # a 0-d array gives its one element
            out = self.convert(items, depth)
        else:
            out = self.sequence(items, items, depth)
        self.active.discard(id(array))
        return out

    def dataframe(self, df, depth):
        self.enter(df, depth)
        columns = [str(c) for c in df.columns]
        self.spend(2 * len(df) or 1)
        out = []
        i = 0
        try:
            for i, row in enumerate(df.itertuples(index=False, name=None)):
                out.append(self.mapping(row, zip(columns, row), depth + 1))
        except BadResult as e:
            if e.path is not None:
                e.path.append(i)
            raise
        self.active.discard(id(df))
        return out


def json_dumps(obj):
    """json.dumps(obj, allow_nan=False, ensure_ascii=False, separators=(',', ':')).

    The same C encoder json.dumps uses, called directly: importing json costs about 5 ms
    (it pulls in re). obj holds only plain JSON types here, so nothing else is needed.
    """
    try:
        encode = _json.make_encoder(None, None, _json.encode_basestring, None, ":", ",",
                                    False, False, False)
        return "".join(encode(obj, 0))
    except (AttributeError, TypeError):  # another _json: the public way
        import json

        return json.dumps(obj, allow_nan=False, ensure_ascii=False, separators=(",", ":"))


def utf8(text):
    """Strict UTF-8. Surrogate code points cannot be encoded: a high+low pair becomes the
    character it stands for (as json.dumps' default \\ud83d\\ude00 escapes would after
    parsing), and any lone surrogate becomes U+FFFD."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        fixed = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
        return fixed.encode("utf-8")


# --- running the script ----------------------------------------------------------------------


async def _probe():
    pass


_coro = _probe()
COROUTINE_TYPE = type(_coro)
_coro.close()
del _coro


def is_coroutine(value):
    if type(value) is COROUTINE_TYPE:
        return True
    abc = sys.modules.get("_collections_abc")  # other coroutine types register there
    return abc is not None and isinstance(value, abc.Coroutine)


def exit_reply(exc):
    """What the interpreter would do with SystemExit: None is 0, an int is itself, anything
    else is printed to stderr and is 1. Ints outside the 32-bit range count as "anything else".
    """
    code = exc.code
    if code is None:
        return {"status": "exit", "code": 0}
    if isinstance(code, int) and -(1 << 31) <= code < (1 << 31):
        return {"status": "exit", "code": int(code)}
    try:
        text = str(code)
    except BaseException:
        text = "<%s object>" % type(code).__name__
    to_stderr(text + "\n")
    return {"status": "exit", "code": 1}


def run(source_bytes):
    """Check, run and call the script; return the reply as (payload dict or bytes)."""
    try:
        source = source_bytes.decode("utf-8")
    except UnicodeDecodeError as e:
        line = source_bytes.count(b"\n", 0, e.start) + 1
        message = "script is not valid UTF-8: %s at byte %d (%s, line %d)" % (
            e.reason, e.start, SCRIPT_NAME, line)
        to_stderr("SyntaxError: %s\n" % message)
        return {"status": "error", "message": message}
    if source.startswith("\ufeff"):
        source = source[1:]

    try:
        tree = compile(source, SCRIPT_NAME, "exec", _ast.PyCF_ONLY_AST, dont_inherit=True)
        code = compile(tree, SCRIPT_NAME, "exec", dont_inherit=True)
    except Exception as e:  # SyntaxError; ValueError for NUL bytes; RecursionError
        report_exception(e, None)
        return {"status": "error", "message": exception_message(e)}
    if not binds_main(tree):
        return {"status": "no_main"}
    del tree

    entry = linecache_entry(source)
    if "linecache" in sys.modules:
        sys.modules["linecache"].cache[SCRIPT_NAME] = entry
    else:
        sys.meta_path.insert(0, LinecacheHook(entry))
    # Not "__main__": the common `if __name__ == "__main__": main()` guard would otherwise
    # run main() a second time, with its output and side effects twice.
    module = type(sys)(MODULE_NAME)
    module.__builtins__ = builtins
    sys.modules[MODULE_NAME] = module  # pickle, dataclasses, typing look the module up here
    sys.argv = [SCRIPT_NAME]
    recursion_limit = sys.getrecursionlimit()
    try:
        exec(code, module.__dict__)
        main = module.__dict__.get("main")
        if main is None or not callable(main):
            return {"status": "no_main"}
        value = main()
        if is_coroutine(value):
            import asyncio

            value = asyncio.run(value)
        # Undo what the script may have changed that the conversion depends on.
        sys.setrecursionlimit(recursion_limit)
        sys.set_int_max_str_digits(sys.int_info.default_max_str_digits)
        result = Converter().convert(value)  # script code may run here too (str(label))
        del value
    except BadResult as e:
        return {"status": "bad_result", "message": e.message()}
    except SystemExit as e:
        return exit_reply(e)
    except BaseException as e:
        report_exception(e, entry)
        return {"status": "error", "message": exception_message(e)}
    payload = utf8(json_dumps({"status": "ok", "result": result}))
    if len(payload) > MAX_PAYLOAD:
        return {"status": "bad_result",
                "message": "Result is too large (over %d bytes)" % MAX_PAYLOAD}
    return payload


def send(fd, reply):
    """Write the one frame and leave at once; exit 70 if the channel is gone.

    Only the job's first process (pid 1 of its namespace) reports: a child the script forked
    that returns from main() too leaves without a frame, and the parent's answer stands."""
    if _getpid() != RUNNER_PID:
        flush_stdio()
        _exit(0)
    try:
        payload = reply if type(reply) is bytes else utf8(json_dumps(reply))
        frame = FRAME_MAGIC + len(payload).to_bytes(4, "big") + payload
        flush_stdio()  # everything printed is in the stdout pipe before the frame is sent
        write_all(fd, frame)
    except BaseException:
        _exit(EXIT_NO_CHANNEL)
    flush_stdio()
    _exit(0)


def runner_main(warm=False):
    global RUNNER_PID
    RUNNER_PID = _getpid()
    if not warm:  # the zygote set it (warm_up)
        sys.path[:] = isolated_path()
    try:
        fd = take_result_channel()
    except BaseException:
        _exit(EXIT_NO_CHANNEL)
    try:
        source_bytes = read_script()
        if not warm:  # a warm job's streams were made that way (job_stdio())
            setup_stdio()
        reply = run(source_bytes)
    except BaseException as e:  # a runner bug or a missing fd 3: still one frame
        reply = {"status": "error", "message": clip_message(
            "runner failure: %s: %s" % (type(e).__name__, exception_message(e)))}
    send(fd, reply)


# --- warm path --------------------------------------------------------------------------------
# sandboxd's zygote (sandboxd/zygote) embeds this interpreter, loads this file as the module
# _pyexec_runner, calls warm_up() once, and then forks one process per job, each jailed like a
# cold job before it calls serve_warm(). The zygote runs no client code: warm_up() imports and
# runs REHEARSAL, our own script.

WARM_IMPORTS = (
    # What jobs import most, and the runner's own lazy imports, so that no job pays for them.
    "numpy", "pandas", "traceback", "linecache", "fcntl", "json", "datetime", "asyncio",
    "math", "random", "re", "collections", "itertools", "functools", "statistics", "decimal",
    "fractions", "string", "time", "os", "io", "dataclasses", "typing",
)


_zygote_stdio = []


def warm_up():
    import gc
    import importlib

    # The zygote's own streams were made for its fds 0-2 (its stderr is sandboxd's log, maybe a
    # seekable file); jobs' take their place (stdio_for_jobs()). These stay referenced forever:
    # freed, they would close fds 0-2, which in a job are the job's.
    _zygote_stdio[:] = [sys.stdin, sys.stdout, sys.stderr]
    sys.path[:] = isolated_path()
    for name in WARM_IMPORTS:
        importlib.import_module(name)
    # A typical job, once here too (our own code, like the imports): the lazy state any job
    # makes on first use (numpy's and pandas' caches, interned names, the type attribute cache)
    # is then made once and shared, not made again in every job. That is about 120 fewer
    # copy-on-write faults per job, and the rehearsal in a spare is no longer the only warm-up
    # a job gets: on a busy machine a spare skips it. Nothing of it stays (see rehearse()).
    failed = rehearse()
    _job_stdio[:] = stdio_for_jobs()
    if _job_stdio:
        # Installed here, so a job has nothing to do (each step a job takes writes reference
        # counts, and so copies pages). The zygote's own log lines go straight to fd 2
        # (write_all); after this its Python runs at most the parent's at-fork hooks (only
        # if it has another thread: zygote/main.c), and whatever one of them printed would go
        # through these unbuffered, write-through streams to the zygote's fd 2, leaving
        # nothing pending for a job to inherit.
        install_stdio(_job_stdio)
    numpy = sys.modules["numpy"]
    # Seeded in every job by set_state() (serve_warm), which leaves these two alone: the
    # SeedSequence numpy drew at import (the zygote's, so every job's: a job could spawn()
    # from it) goes, and no cached Gaussian stays.
    numpy.random.seed(0)
    if failed:
        # Jobs are only slower for it (each pays the faults itself), not wrong: said once, in
        # sandboxd's log (our fd 2), rather than refused.
        try:
            write_all(2, ("pyexec-zygote: the rehearsal failed, warm jobs will be slower: %s\n"
                          % failed).encode("utf-8", "backslashreplace"))
        except OSError:
            pass  # a log that takes no more is no reason to refuse warm jobs
    # A job keeps this one (runner_main(warm=True)): set again after the imports and the
    # rehearsal, whatever they did to it.
    sys.path[:] = isolated_path()
    # Everything alive now is shared copy-on-write by every job; frozen, the collector never
    # walks (and so never writes to) these objects in a job.
    gc.collect()
    gc.freeze()


def job_stdio():
    """Streams on fds 0-2 as `python3.11 -u` makes them for a cold job (create_stdio() in
    CPython's pylifecycle.c, C.UTF-8 locale, then setup_stdio()); test_warm.py compares the
    two."""
    streams = []
    for fd, name, mode, errors in ((0, "<stdin>", "r", "surrogateescape"),
                                   (1, "<stdout>", "w", "surrogateescape"),
                                   (2, "<stderr>", "w", "backslashreplace")):
        # -u: stdout and stderr unbuffered, stdin buffered (by the fd's block size).
        buf = io.open(fd, mode + "b", buffering=-1 if fd == 0 else 0, closefd=False)
        getattr(buf, "raw", buf).name = name
        stream = io.TextIOWrapper(buf, encoding="utf-8", errors=errors, newline="\n",
                                  write_through=True)
        stream.mode = mode
        streams.append(stream)
    return streams


_job_stdio = []  # job_stdio(), made once in the zygote: see stdio_for_jobs()


def stdio_for_jobs():
    """job_stdio() made in the zygote, for every job to start with, or [] if it cannot be.

    Made in each job, the streams cost it about 50 copy-on-write faults (the codec lookup, the
    io types); made here, each job copies the few pages they sit on. A stream learns what its
    fd is when it is made (seekable or not, the position) and keeps it, so they are made on
    fds of the kinds a job's are: for the moment, fd 0 is /dev/null (read-only) and fds 1 and
    2 a pipe, as jail.c leaves them in a job; then the zygote's own fds 0-2 come back.
    """
    import fcntl

    saved, kinds, made = [], [], []
    try:
        for fd in (0, 1, 2):
            saved.append(fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10))
        kinds.extend(posix.pipe())
        kinds.append(posix.open("/dev/null", posix.O_RDONLY | posix.O_CLOEXEC))
        try:
            posix.dup2(kinds[2], 0)
            posix.dup2(kinds[1], 1)
            posix.dup2(kinds[1], 2)
            made = job_stdio()
        finally:
            for fd, old in enumerate(saved):
                posix.dup2(old, fd)
    except OSError:
        made = []  # each job makes its own (serve_warm)
    finally:
        for fd in saved + kinds:
            posix.close(fd)
    return made


def install_stdio(streams):
    sys.stdin = sys.__stdin__ = streams[0]
    sys.stdout = sys.__stdout__ = streams[1]
    sys.stderr = sys.__stderr__ = streams[2]


# What a typical job does, run once in the zygote (warm_up) and once in every spare before its
# job arrives. Forked from the zygote, a process pays a page fault for each page it first
# writes, and running any script writes reference counts all over the interpreter, numpy and
# pandas: 700-900 faults, 3-4 ms on the first run and under 1 ms on the next. The rehearsal takes
# them while the spare waits, already jailed, so the job does not. It is our own code; nothing
# of it stays in sight of the job (its module, its source lines, its objects, its numbers:
# numpy is reseeded after it).
REHEARSAL = b"""import numpy as np
import pandas as pd

def main():
    data = pd.DataFrame({'numbers': [1, 2, 3, 4, 5], 'squares': [1.0, 4.0, 9.0, 16.0, 25.0]})
    mean_value = np.mean(data['numbers'])
    print(end='')
    return {'mean': mean_value, 'shape': data.shape, 'total': int(data['squares'].sum()),
            'records': data.head(2).to_dict('records'), 'array': np.arange(3), 'text': 'x'}
"""


_rehearsing = False


def rehearse():
    """Runs REHEARSAL and removes what it left; returns None, or what went wrong. It must
    write nothing: in the zygote fds 1 and 2 are sandboxd's log, in a spare the job's stdout
    and stderr. Its print(end='') writes no byte, and the runner's own reports (to_stderr: a
    traceback, an exit message) are off while it runs. (A warning would still be printed:
    REHEARSAL raises none, and test_warm.py would see one in a job's stderr.)"""
    global _rehearsing
    _rehearsing = True
    try:
        reply = run(REHEARSAL)
    except BaseException as e:
        reply = {"status": "error", "message": exception_message(e)}
    finally:
        _rehearsing = False
    module = sys.modules.pop(MODULE_NAME, None)
    if module is not None:
        # Its functions and its dict hold each other: left to the collector, they would stay
        # in the process, for a job to find with gc.get_objects(), until the next collection.
        module.__dict__.clear()
    linecache = sys.modules.get("linecache")
    if linecache is not None:
        linecache.cache.pop(SCRIPT_NAME, None)
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, LinecacheHook)]
    if type(reply) is bytes:
        return None  # a result frame's payload: it ran to the end
    return "%s: %s" % (reply.get("status"), reply.get("message", ""))


SYNC_FD = 5  # the spare's socket to sandboxd; closed, it tells sandboxd the spare is ready


def script_waiting():
    """A job took this spare before it was ready (the machine is busy): its script is there."""
    import select

    try:
        return bool(select.select([SCRIPT_FD], [], [], 0)[0])
    except (OSError, ValueError):
        return False


def serve_warm():
    if not _job_stdio:  # the zygote could not make them (stdio_for_jobs())
        install_stdio(job_stdio())
    # The rehearsal only moves work out of a job's way; when the job is already waiting, it
    # would only delay it (and on a busy machine cost CPU other jobs need).
    if not script_waiting():
        rehearse()
    try:
        posix.close(SYNC_FD)
    except OSError:
        pass
    # Forked: the `random` module was reseeded by Python's at-fork hook, numpy's global
    # generator was not; without this every job would draw the same numbers. Its whole state
    # (MT19937's 624 words) comes from the kernel's randomness, set as get_state() gives it
    # back: no array is made, and seed() with an array touched about 100 pages more of
    # numpy, each a copy-on-write fault. warm_up() cleared what set_state() leaves.
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        # A view, not a list: numpy copies one word at a time, and 624 ints made at once
        # would take pages of their own.
        key = memoryview(posix.urandom(2496)).cast("I")
        numpy.random.set_state(("MT19937", key, 624, 0, 0.0))
    runner_main(warm=True)


if __name__ == "__main__":
    runner_main()
