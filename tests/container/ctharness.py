"""Helpers of the container test: podman as a stand-in for Docker, a base image made locally.

This machine has no Docker engine and no registry. podman (Debian's package, runc runtime)
runs the image; `debootstrap --variant=minbase bookworm` plus `podman import` makes the
Dockerfile's base image, debian:bookworm-slim, from the host's own Debian mirror. Both the base
and the built image stay in podman's store, so a second run rebuilds only what changed.
"""
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.abspath(os.path.join(HERE, "..", ".."))
README = os.path.join(SRC, "README.md")
BASE = "debian:bookworm-slim"
IMAGE = os.environ.get("PYEXEC_CONTAINER_IMAGE", "python-executor")
PACKAGES = ["podman", "runc", "debootstrap", "curl", "python3-yaml"]


def log(msg):
    print(f"[container] {msg}", flush=True)


def run(cmd, check=True, timeout=600, **kw):
    """Runs a command, capturing its output; raises with that output when check fails."""
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    if check and p.returncode != 0:
        raise RuntimeError(f"{shlex.join(cmd)}: exit {p.returncode}\n{p.stdout[-3000:]}"
                           f"\n{p.stderr[-3000:]}")
    return p


def skip_reason():
    if os.geteuid() != 0:
        return "the container test runs rootful podman: run as root"
    return None


def ensure_packages():
    """Installs podman, runc, debootstrap and curl when missing (CI machines are fresh)."""
    missing = [p for p in PACKAGES
               if run(["dpkg-query", "-W", "-f=${Status}", p], check=False).stdout
               != "install ok installed"]
    if not missing:
        return None
    log(f"installing {' '.join(missing)}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    p = run(["apt-get", "update", "-q"], check=False, env=env, timeout=900)
    p = run(["apt-get", "install", "-y", "-q", "--no-install-recommends",
             "-o", "DPkg::Lock::Timeout=600", *missing], check=False, env=env, timeout=1800)
    if p.returncode != 0:
        return f"cannot install {' '.join(missing)}: {p.stderr.strip()[-500:]}"
    return None


def podman(*args, check=True, timeout=600):
    return run(["podman", *args], check=check, timeout=timeout)


def mirror(security=False):
    """The host's Debian mirror (or its security mirror), from deb822 or one-line sources."""
    uris = []
    d = "/etc/apt/sources.list.d"
    files = [os.path.join(d, f) for f in sorted(os.listdir(d))] if os.path.isdir(d) else []
    for path in ["/etc/apt/sources.list", *files]:
        if not path.endswith((".list", ".sources")) or not os.path.isfile(path):
            continue
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                words = line.split()
                if path.endswith(".sources") and words[:1] == ["URIs:"]:
                    uris += words[1:]
                elif path.endswith(".list") and words[:1] == ["deb"]:
                    uris += [w for w in words[1:] if re.match(r"(https?|file):", w)][:1]
    for u in uris:
        if ("security" in u) == security and "debian" in u:
            return u
    return "http://deb.debian.org/debian-security" if security else "http://deb.debian.org/debian"


def ensure_base():
    """debian:bookworm-slim, made with debootstrap unless podman already has it."""
    if podman("image", "exists", BASE, check=False).returncode == 0:
        return False
    m = mirror()
    log(f"making {BASE}: debootstrap --variant=minbase bookworm from {m}")
    with tempfile.TemporaryDirectory(prefix="pyexec-base-") as tmp:
        root = os.path.join(tmp, "root")
        run(["debootstrap", "--variant=minbase", "bookworm", root, m], timeout=1800)
        # Like the official image: updates and security too, and no package lists (the
        # Dockerfile's apt-get update fetches them).
        os.unlink(os.path.join(root, "etc/apt/sources.list"))
        with open(os.path.join(root, "etc/apt/sources.list.d/debian.sources"), "w") as f:
            f.write(f"Types: deb\nURIs: {m}\nSuites: bookworm bookworm-updates\n"
                    "Components: main\n"
                    "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n"
                    f"Types: deb\nURIs: {mirror(security=True)}\nSuites: bookworm-security\n"
                    "Components: main\n"
                    "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n")
        shutil.rmtree(os.path.join(root, "var/lib/apt/lists"), ignore_errors=True)
        os.makedirs(os.path.join(root, "var/lib/apt/lists/partial"), exist_ok=True)
        tar = subprocess.Popen(["tar", "-C", root, "-c", "."], stdout=subprocess.PIPE)
        imp = subprocess.run(["podman", "import", "-", BASE], stdin=tar.stdout,
                             capture_output=True, text=True, timeout=600)
        tar.stdout.close()
        if tar.wait() != 0 or imp.returncode != 0:
            raise RuntimeError(f"podman import failed: {imp.stderr[-2000:]}")
    return True


def _hard_limit(flag):
    out = run(["bash", "-c", f"ulimit -H{flag}"]).stdout.strip()
    return None if out == "unlimited" else int(out)


def probe_runtime():
    """The extra flags podman needs on this host to start any container, or raises.

    Rootful podman raises a container's open-files and process limits to 1048576, which
    needs CAP_SYS_RESOURCE. Where root lacks it (this CI machine is itself a sandbox), every
    container fails with "error setting rlimit"; then the host's own hard limits are passed
    instead. Docker hosts do not need this, so it is not part of the README's command.
    """
    candidates = [[]]
    nofile, nproc = _hard_limit("n"), _hard_limit("u")
    for np_ in (nproc, 32768, 4096):
        if np_:
            candidates.append(["--ulimit", f"nofile={nofile or 1048576}:{nofile or 1048576}",
                               "--ulimit", f"nproc={np_}:{np_}"])
    err = ""
    for extra in candidates:
        p = podman("run", "--rm", "--network", "none", *extra, BASE, "true", check=False,
                   timeout=300)
        if p.returncode == 0:
            if extra:
                log(f"this host's root cannot raise rlimits (no CAP_SYS_RESOURCE): adding "
                    f"{' '.join(extra)} to podman build and run")
            return extra
        err = p.stderr.strip()
    raise RuntimeError(f"podman cannot run a container here: {err[-800:]}")


def _image_id(ref):
    p = podman("image", "inspect", "-f", "{{.Id}}", ref, check=False)
    return p.stdout.strip() if p.returncode == 0 else None


def build_image(extra):
    """podman build of the Dockerfile; docker format, which keeps HEALTHCHECK.

    The build stage is tagged too (IMAGE-build), so its apt-get layer stays cached while the
    images of earlier builds, which a source change leaves untagged, are removed."""
    t = time.monotonic()
    old = {ref: _image_id(ref) for ref in (IMAGE, f"{IMAGE}-build")}
    podman("build", "--format", "docker", *extra, "--target", "build", "-t", f"{IMAGE}-build",
           SRC, timeout=1800)
    p = podman("build", "--format", "docker", *extra, "-t", IMAGE, SRC, timeout=1800)
    log(f"podman build -t {IMAGE} . took {time.monotonic() - t:.1f} s")
    for ref, was in old.items():
        if was and was != _image_id(ref):
            podman("rmi", was, check=False)
    return p


def readme_run_command():
    """The `docker run` command README.md shows, joined into one line. The README is what the
    test runs, so it cannot drift from what works."""
    text = ""
    if os.path.exists(README):
        with open(README, encoding="utf-8") as f:
            text = f.read()
    for block in re.findall(r"```(?:sh|bash|console)\n(.*?)```", text, re.S):
        joined = block.replace("\\\n", " ")
        for line in joined.splitlines():
            if line.strip().startswith("docker run") and "--cap-add" in line:
                return line.strip(), "README.md"
    raise AssertionError("README.md shows no `docker run ... --cap-add ...` command")


def readme_manifest():
    """The Kubernetes manifest README.md shows (the yaml block with a Deployment)."""
    text = ""
    if os.path.exists(README):
        with open(README, encoding="utf-8") as f:
            text = f.read()
    for block in re.findall(r"```ya?ml\n(.*?)```", text, re.S):
        if "kind: Deployment" in block:
            return block, "README.md"
    raise AssertionError("README.md shows no Kubernetes Deployment manifest")


def containers_conf(extra):
    """A containers.conf carrying extra's --ulimit flags (kube play has no --ulimit), or None."""
    limits = [extra[i + 1] for i, w in enumerate(extra) if w == "--ulimit"]
    if not limits:
        return None
    fd, path = tempfile.mkstemp(prefix="pyexec-containers-", suffix=".conf")
    with os.fdopen(fd, "w") as f:
        f.write("[containers]\ndefault_ulimits = [%s]\n" % ", ".join(f'"{x}"' for x in limits))
    return path


def parse_run(command):
    """Splits `docker run [flags] IMAGE` into (flags without -d/--name/-p, image)."""
    words = shlex.split(command.split("#", 1)[0])
    assert words[:2] == ["docker", "run"], command
    flags, i = [], 2
    while i < len(words) - 1:
        w = words[i]
        if w in ("-d", "--detach", "--rm"):
            i += 1
        elif w in ("--name", "-p", "--publish"):
            i += 2
        elif w.startswith(("--name=", "-p=", "--publish=")):
            i += 1
        else:
            flags.append(w)
            i += 1
    return flags, words[-1]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def curl(port, method, path, body=None, headers=(), timeout=60):
    """(status, body) of one request to the container's published port, with curl."""
    cmd = ["curl", "-sS", "-m", str(timeout), "-X", method, "-w", "\n%{http_code}"]
    for h in headers:
        cmd += ["-H", h]
    if body is not None:
        cmd += ["--data-binary", body]
    cmd.append(f"http://127.0.0.1:{port}{path}")
    p = run(cmd, check=False, timeout=timeout + 10)
    if p.returncode != 0:
        return None, p.stderr
    text, _, status = p.stdout.rpartition("\n")
    return int(status), text


class Container:
    """One detached container of the image, published on a free port of 127.0.0.1."""

    def __init__(self, flags, extra, env=(), container_port=8080, name=None):
        self.port = free_port()
        self.name = name or f"pyexec-ctest-{os.getpid()}-{self.port}"
        cmd = ["run", "-d", "--name", self.name, "-p", f"127.0.0.1:{self.port}:{container_port}",
               *extra, *flags]
        for e in env:
            cmd += ["-e", e]
        self.cmd = ["podman", *cmd, IMAGE]
        podman("rm", "-f", self.name, check=False)
        self.started = time.monotonic()
        podman(*cmd, IMAGE)

    def state(self):
        p = podman("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", self.name,
                   check=False)
        status, _, code = p.stdout.strip().partition(" ")
        return status, int(code) if code.lstrip("-").isdigit() else None

    def logs(self):
        p = podman("logs", self.name, check=False)
        # podman mixes its own complaints (no systemd for healthcheck timers) into stderr.
        lines = (p.stdout + p.stderr).splitlines()
        return "\n".join(x for x in lines if not x.startswith("time=")) + "\n"

    def wait_healthy(self, timeout=90):
        """Seconds until /health answered 200, or None if the container stopped first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status, _ = curl(self.port, "GET", "/health", timeout=3)
            if status == 200:
                return time.monotonic() - self.started
            if self.state()[0] not in ("running", "created", "configured", "initialized"):
                return None
            time.sleep(0.2)
        return None

    def wait_exited(self, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.state()[0] in ("exited", "stopped"):
                return True
            time.sleep(0.2)
        return False

    def exec(self, *cmd):
        return podman("exec", self.name, *cmd, check=False)

    def processes(self):
        """{pid: {"Name":..., "Uid":..., "CapEff":..., "NoNewPrivs":...}} seen in the container."""
        script = ("for d in /proc/[0-9]*; do echo \"== ${d#/proc/}\"; "
                  "cat $d/status 2>/dev/null; done")
        out = self.exec("sh", "-c", script).stdout
        procs, cur = {}, None
        for line in out.splitlines():
            if line.startswith("== "):
                cur = procs.setdefault(int(line[3:]), {})
            elif cur is not None and ":" in line:
                k, _, v = line.partition(":")
                cur[k] = v.strip()
        return {p: d for p, d in procs.items() if d}

    def remove(self):
        podman("rm", "-f", "-t", "0", self.name, check=False)


def seccomp_without(syscall):
    """podman's default seccomp profile minus one system call, as a file path.

    Docker's default profile (moby's profiles/seccomp/default.json) does not list pivot_root
    at all; podman's does. Taking pivot_root out of podman's profile reproduces what Docker's
    default would do to sandboxd, on a machine that has no Docker."""
    path = "/usr/share/containers/seccomp.json"
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        prof = json.load(f)
    for rule in prof.get("syscalls", []):
        rule["names"] = [n for n in rule.get("names", []) if n != syscall]
    fd, out = tempfile.mkstemp(prefix=f"seccomp-no-{syscall}-", suffix=".json")
    with os.fdopen(fd, "w") as f:
        json.dump(prof, f)
    return out
