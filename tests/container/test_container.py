"""The image built from the Dockerfile, run as README.md says, answers the API over HTTP.

podman stands in for Docker (see ctharness.py). One container runs with the README's
`docker run` flags; the SEED's and the README's examples go to its published port with curl;
the processes inside are checked (gatewayd as `pyexec` with no capabilities); `podman stop`
(SIGTERM) must let a job in flight finish and end the container with status 0. Then each
flag is left out in turn, to prove that each one is needed.
"""
import json
import os
import re
import subprocess
import tempfile
import threading
import time

import ctharness as ct
import seed  # tests/seed.py (conftest puts tests/ on the path)

JSON = ("Content-Type: application/json",)


def execute(port, script, **fields):
    return ct.curl(port, "POST", "/execute", json.dumps({"script": script, **fields}), JSON)


def check(got, status, body):
    """got is (status, text): the status and the exact body (the reply ends with a newline)."""
    assert got[0] == status, got
    assert got[1].rstrip("\n") == body, got


# The SEED document's examples (the contract), with the exact reply each must get.
SEED = seed.EXAMPLES


def test_health(service):
    check(ct.curl(service.port, "GET", "/health"), 200, '{"status": "healthy"}')


def test_warm_path_in_the_container(service):
    """The zygote runs inside the container with the README's capabilities and is verified by
    its canary; jobs run in its spares."""
    end = time.monotonic() + 120
    while "warm path: verified" not in service.logs() and time.monotonic() < end:
        time.sleep(0.2)
    logs = service.logs()
    assert "canary (warm): uid 1000" in logs, logs[-3000:]
    status, text = execute(service.port,
                           "import os\ndef main():\n    return os.readlink('/proc/self/exe')\n")
    assert (status, json.loads(text)) == (200, {"result": "/opt/pyexec/pyexec-zygote",
                                                "stdout": ""}), text


def test_seed_examples(service):
    for name, script, status, body in SEED:
        t = time.monotonic()
        got = execute(service.port, script)
        assert (got[0], got[1].rstrip("\n")) == (status, body), name
        ct.log(f"{name}: HTTP {got[0]} in {time.monotonic() - t:.2f} s")


def test_seed_random_data(service):
    script = ('import numpy as np\nimport pandas as pd\n\ndef main():\n'
              '    data = np.random.rand(100)\n    df = pd.DataFrame({"values": data})\n'
              '    return {"mean": float(df["values"].mean()), '
              '"std": float(df["values"].std()), "count": len(df)}')
    status, text = execute(service.port, script)
    assert status == 200, text
    result = json.loads(text)["result"]
    assert result["count"] == 100 and 0 < result["mean"] < 1 and result["std"] > 0


def test_invalid_json_and_timeout(service):
    check(ct.curl(service.port, "POST", "/execute", "this is not json", JSON),
          400, '{"error": "Request must be JSON"}')
    check(execute(service.port, "def main():\n    while True:\n        pass", timeout_ms=1000),
          400, '{"error": "Script execution timed out", "stdout": ""}')


def test_readme_api_examples(service):
    """Every curl block of README.md's API section, as tests/gateway/test_readme.py runs it,
    against the container's published port."""
    text = open(ct.README, encoding="utf-8").read()
    blocks = re.findall(r"```sh\n(curl [^`]*?)```\n```json\n([^`]*?)```", text, re.S)
    examples = [(c, b) for c, b in blocks if "localhost:8080" in c]
    assert examples, "README.md has no API examples"
    for command, body in examples:
        status = int(re.search(r"^# HTTP (\d{3})$", command, re.M).group(1))
        command = command.replace("http://localhost:8080", f"http://127.0.0.1:{service.port}")
        command = command.replace("curl ", "curl -sS -w '\\n%{http_code}' ", 1)
        p = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, (command, p.stderr)
        got_body, _, got_status = p.stdout.rpartition("\n")
        assert (int(got_status), got_body) == (status, body), command
    ct.log(f"README examples: {len(examples)} answered as documented")


def test_processes_and_privileges(service):
    """PID 1 is the launcher; sandboxd is root; gatewayd runs as pyexec, with nothing left."""
    procs = service.processes()
    names = {p: d.get("Name") for p, d in procs.items()}
    assert names.get(1) == "pyexec-run", names
    pyexec_uid = service.exec("id", "-u", "pyexec").stdout.strip()
    assert pyexec_uid.isdigit(), pyexec_uid
    gw = [d for d in procs.values() if d.get("Name") == "gatewayd"]
    sb = [d for d in procs.values() if d.get("Name") == "sandboxd"]
    assert len(gw) == 1 and len(sb) == 1, names
    gw = gw[0]
    assert gw["Uid"].split() == [pyexec_uid] * 4, gw["Uid"]
    assert gw["Gid"].split()[0] != "0", gw["Gid"]
    assert int(gw["CapEff"], 16) == 0 and int(gw["CapPrm"], 16) == 0, gw
    assert int(gw["CapBnd"], 16) == 0, gw["CapBnd"]
    assert gw["NoNewPrivs"] == "1"
    assert sb[0]["Uid"].split()[0] == "0"
    # PID 1 (bash) reaps what it inherits: an orphan of `exec` ends as nobody's zombie.
    service.exec("sh", "-c", "sleep 0.3 & exit 0")
    time.sleep(1.5)
    zombies = {p: d.get("Name") for p, d in service.processes().items()
               if d.get("State", "").startswith("Z")}
    assert not zombies, zombies


def test_healthcheck(service):
    """The image's HEALTHCHECK (docker format keeps it) passes on a serving container."""
    p = ct.podman("healthcheck", "run", service.name, check=False)
    assert p.returncode == 0, p.stdout + p.stderr


def test_port_env(flags, extra):
    """PORT is honoured: the gateway serves 0.0.0.0:$PORT (Cloud Run sets it)."""
    c = ct.Container(flags, extra, env=["PORT=9090"], container_port=9090)
    try:
        took = c.wait_healthy()
        assert took is not None, c.logs()
        assert "listening on http://0.0.0.0:9090" in c.logs()
        check(execute(c.port, "def main():\n    return 9090"), 200,
              '{"result": 9090, "stdout": ""}')
    finally:
        c.remove()


def test_stop_drains_and_exits_0(service):
    """podman stop (SIGTERM to PID 1): the job in flight gets its answer, both daemons stop in
    order, and the container exits 0 well inside the stop timeout."""
    answer = {}

    def slow_job():
        answer["got"] = execute(service.port, "import time\ndef main():\n"
                                "    time.sleep(2)\n    return 'drained'")

    t = threading.Thread(target=slow_job)
    t.start()
    time.sleep(0.7)  # the job is running in sandboxd
    t0 = time.monotonic()
    p = ct.podman("stop", service.name, check=False, timeout=120)
    took = time.monotonic() - t0
    t.join(30)
    assert p.returncode == 0, p.stderr
    assert answer.get("got") == (200, '{"result": "drained", "stdout": ""}\n'), answer
    status, code = service.state()
    logs = service.logs()
    ct.log(f"podman stop took {took:.1f} s with a 2 s job in flight; exit status {code}")
    assert status == "exited" and code == 0, (status, code, logs)
    assert took < 20, took
    order = [logs.index(s) for s in ("SIGTERM: stopping gatewayd, then sandboxd",
                                     "gatewayd exited with status 0",
                                     "sandboxd exited with status 0")]
    assert order == sorted(order), logs


VALUE_OPTS = ("--cap-add", "--cap-drop", "--security-opt")


def _without(flags, value):
    """flags minus the option that carries value ("--cap-add SYS_ADMIN", "--security-opt
    seccomp=unconfined", or their --opt=value forms)."""
    out, i = [], 0
    while i < len(flags):
        w = flags[i]
        if w in VALUE_OPTS and i + 1 < len(flags) and flags[i + 1] == value:
            i += 2
            continue
        if any(w == f"{o}={value}" for o in VALUE_OPTS):
            i += 1
            continue
        out.append(w)
        i += 1
    assert len(out) < len(flags), (value, flags)
    return out


def _expect_refusal(flags, extra, why):
    c = ct.Container(flags, extra)
    try:
        assert c.wait_healthy(timeout=60) is None, f"healthy without what {why!r} needs"
        assert c.wait_exited(), c.state()
        logs = c.logs()
        assert c.state()[1] != 0, logs
        line = [x for x in logs.splitlines() if why in x and "error" in x]
        assert line, logs
        line = line[0]
        ct.log(f"  refused: {line.strip()}")
    finally:
        c.remove()


def test_each_flag_is_needed(flags, extra):
    """Leave each capability out in turn: the launcher or the canary must refuse to serve,
    naming what failed. Then the seccomp profile: podman's default allows pivot_root, Docker's
    does not, which is why the README passes seccomp=unconfined."""
    needs = {
        "CHOWN": "cannot prepare /run/pyexec",  # the socket directory's group
        "KILL": "no CAP_KILL",  # the launcher's SIGTERM to gatewayd, another uid
        "SETUID": "uid/gid map",  # the job's uid map, gatewayd's setresuid
        "SETGID": "setgroups",
        "SETPCAP": "dropping the capability bounding set",  # gatewayd sheds it
        "SYS_ADMIN": "cannot create the pyexec cgroup",  # mounts, namespaces, the remount
        "NET_ADMIN": "Sandbox error: network",  # lo up in the job's network namespace
    }
    caps = [flags[i + 1] for i, w in enumerate(flags) if w == "--cap-add"]
    assert sorted(caps) == sorted(needs), caps
    assert "ALL" in [flags[i + 1] for i, w in enumerate(flags) if w == "--cap-drop"]
    for cap, why in needs.items():
        ct.log(f"without --cap-add {cap}:")
        _expect_refusal(_without(flags, cap), extra, why)

    base = _without(flags, "seccomp=unconfined")
    profile = ct.seccomp_without("pivot_root")
    if profile:
        ct.log("with a seccomp profile that lacks pivot_root, as Docker's default does:")
        try:
            _expect_refusal(base + ["--security-opt", f"seccomp={profile}"], extra, "pivot_root")
        finally:
            os.unlink(profile)
    ct.log("with podman's default seccomp profile (it allows pivot_root):")
    c = ct.Container(base, extra)
    try:
        assert c.wait_healthy() is not None, c.logs()
        check(execute(c.port, "def main():\n    return 1"), 200, '{"result": 1, "stdout": ""}')
        ct.log("  serves")
    finally:
        c.remove()


def test_kubernetes_manifest(extra):
    """The README's Kubernetes manifest, played by podman (`podman kube play`): one replica,
    the image built here, its port on 127.0.0.1. podman applies the securityContext's
    capabilities, allowPrivilegeEscalation and readOnlyRootFilesystem, so the pod must serve
    with exactly those and nothing more. (podman 4.3 ignores seccompProfile and keeps its own
    default profile, which allows pivot_root; the Service is not played.)"""
    import yaml

    text, source = ct.readme_manifest()
    docs = [d for d in yaml.safe_load_all(text) if d]
    dep = [d for d in docs if d.get("kind") == "Deployment"][0]
    assert [d.get("kind") for d in docs].count("Service") == 1, source
    spec = dep["spec"]["template"]["spec"]
    box = spec["containers"][0]
    sc = box["securityContext"]
    want = sorted(sc["capabilities"]["add"])
    assert sc["capabilities"]["drop"] == ["ALL"] and sc["allowPrivilegeEscalation"] is False
    assert sc["seccompProfile"]["type"] == "Unconfined", "the runtime's default lacks pivot_root"
    port = ct.free_port()
    dep["spec"]["replicas"] = 1
    box["image"] = f"localhost/{ct.IMAGE}:latest"
    box["ports"][0].update(hostPort=port, hostIP="127.0.0.1")
    fd, path = tempfile.mkstemp(prefix="pyexec-kube-", suffix=".yaml")
    with os.fdopen(fd, "w") as f:
        yaml.safe_dump(dep, f)
    conf = ct.containers_conf(extra)
    env = dict(os.environ, **({"CONTAINERS_CONF": conf} if conf else {}))
    name = f"{dep['metadata']['name']}-pod-0-{box['name']}"
    ct.log(f"kube play of the manifest from {source}")
    try:
        ct.run(["podman", "kube", "play", "--replace", path], env=env, timeout=300)
        deadline = time.monotonic() + 90
        while ct.curl(port, "GET", "/health", timeout=3)[0] != 200:
            assert time.monotonic() < deadline, ct.podman("logs", name, check=False).stderr
            time.sleep(0.3)
        script = "import pandas as pd\ndef main():\n    return int(pd.Series([1, 2]).sum())"
        check(execute(port, script), 200, '{"result": 3, "stdout": ""}')
        caps = ct.podman("inspect", "-f", "{{json .EffectiveCaps}}", name).stdout
        assert sorted(c.removeprefix("CAP_") for c in json.loads(caps)) == want, caps
        ro = ct.podman("inspect", "-f", "{{.HostConfig.ReadonlyRootfs}}", name).stdout.strip()
        assert ro == "true"
        st = ct.podman("exec", name, "grep", "NoNewPrivs", "/proc/1/status").stdout
        assert st.split() == ["NoNewPrivs:", "1"], st
        t = time.monotonic()
        ct.podman("pod", "stop", f"{dep['metadata']['name']}-pod-0")
        code = ct.podman("inspect", "-f", "{{.State.ExitCode}}", name).stdout.strip()
        ct.log(f"  serves with {', '.join(want)}; pod stop took {time.monotonic() - t:.1f} s, "
               f"exit status {code}")
        assert code == "0"
    finally:
        ct.run(["podman", "kube", "down", path], check=False, env=env)
        os.unlink(path)
        if conf:
            os.unlink(conf)

