/* py.c - the zygote's interpreter: CPython 3.11 embedded with the same settings as the cold
 * path's `python3.11 -I -S -B -u`, the runner loaded as a module, numpy and pandas imported,
 * every object frozen out of the garbage collector's reach. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "zygote.h"

/* What this file, arenas.c, seal.c and main.c's forks without PyOS_BeforeFork() rely on was
 * checked against CPython 3.11 (its arena and pool sizes, its at-fork work): a newer one
 * needs that done again. */
#if PY_VERSION_HEX < 0x030B0000 || PY_VERSION_HEX >= 0x030C0000
#error "pyexec-zygote is written for CPython 3.11"
#endif

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cleanup.h"
#include "mounts.h"
#include "proto.h"

static PyObject *runner; /* the runner module, "_pyexec_runner" */

static int call_runner(const char *fn)
{
	PyObject *r = PyObject_CallMethod(runner, fn, NULL);

	if (!r) {
		PyErr_Print();
		return -EINVAL;
	}
	Py_DECREF(r);
	return 0;
}

/* The runner's source from the zygote's own root, run as a module of its own name: `import
 * runner` in a script finds nothing, as on the cold path. */
static int load_runner(void)
{
	_cleanup_close_ int fd = open(MNT_RUNNER_DIR "/runner.py", O_RDONLY | O_CLOEXEC);
	_cleanup_free_ char *src = NULL;
	size_t len;
	PyObject *code;
	int r;

	if (fd < 0)
		return -errno;
	r = proto_read_capped(fd, 1 << 20, &src, &len);
	if (r < 0)
		return r;
	code = Py_CompileStringExFlags(src, MNT_RUNNER_DIR "/runner.py", Py_file_input, NULL, 0);
	if (!code) {
		PyErr_Print();
		return -EINVAL;
	}
	runner = PyImport_ExecCodeModule("_pyexec_runner", code);
	Py_DECREF(code);
	if (!runner) {
		PyErr_Print();
		return -EINVAL;
	}
	return 0;
}

static int start_failed(PyStatus st)
{
	fprintf(stderr, "pyexec-zygote: cannot start CPython: %s\n",
		st.err_msg ? st.err_msg : "unknown error");
	return -EINVAL;
}

int zy_py_init(const char *python, struct zy_arenas *arenas)
{
	wchar_t wpython[256];
	PyPreConfig pre;
	PyConfig c;
	PyStatus st;
	int r;

	if (mbstowcs(wpython, python, ARRAY_SIZE(wpython)) >= ARRAY_SIZE(wpython))
		return -ENAMETOOLONG;
	/* Pre-initialised apart (as -I would have it), so that the arena allocator is in place
	 * before the interpreter allocates anything. */
	PyPreConfig_InitIsolatedConfig(&pre);
	st = Py_PreInitialize(&pre);
	if (PyStatus_Exception(st))
		return start_failed(st);
	/* Best effort: without the region, CPython's own arenas, only fewer huge pages. */
	(void)zy_arenas_open(arenas);
	/* -I: no environment variables, no user site, no script directory on the path. */
	PyConfig_InitIsolatedConfig(&c);
	c.site_import = 0;    /* -S */
	c.write_bytecode = 0; /* -B */
	c.buffered_stdio = 0; /* -u */
	c.parse_argv = 0;
	/* sys.executable and the prefix (hence the stdlib path) as for the cold path. */
	st = PyConfig_SetString(&c, &c.program_name, wpython);
	if (!PyStatus_Exception(st))
		st = PyConfig_SetString(&c, &c.executable, wpython);
	if (!PyStatus_Exception(st))
		st = Py_InitializeFromConfig(&c);
	PyConfig_Clear(&c);
	if (PyStatus_Exception(st))
		return start_failed(st);
	if ((r = load_runner()) < 0)
		return r;
	/* Imports numpy, pandas and what the runner needs per job, runs one rehearsal job (our own
	 * script), then gc.freeze(). */
	return call_runner("warm_up");
}

void zy_py_before_fork(void)
{
	PyOS_BeforeFork();
}

void zy_py_after_fork_parent(void)
{
	PyOS_AfterFork_Parent();
}

void zy_py_after_fork_child(void)
{
	/* Python's own at-fork work: locks reset, `random` reseeded, threads forgotten. */
	PyOS_AfterFork_Child();
}

_Noreturn void zy_py_serve(void)
{
	/* Reads the script from fd 3 (it arrives when a job is assigned), runs it, writes the
	 * frame on fd 4 and leaves with os._exit: it does not come back. */
	(void)call_runner("serve_warm");
	_exit(70);
}
