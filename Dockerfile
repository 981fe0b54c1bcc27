# pyexec as a container: sandboxd (root inside the container, builds a jail per job) and
# gatewayd (drops to the `pyexec` account) started by systemd/pyexec-run, which is PID 1.
#
#   docker build -t python-executor .
#   docker run -d -p 8080:8080 \
#     --cap-drop ALL --cap-add CHOWN --cap-add KILL --cap-add SETUID --cap-add SETGID \
#     --cap-add SETPCAP --cap-add SYS_ADMIN --cap-add NET_ADMIN \
#     --security-opt seccomp=unconfined --security-opt apparmor=unconfined \
#     --security-opt no-new-privileges --cgroupns private --read-only --tmpfs /run \
#     --stop-timeout 40 python-executor
#
# Why each flag is needed is in README.md (tests/container proves it, leaving each out in
# turn). PORT is honoured (gatewayd serves 0.0.0.0:$PORT); it defaults to 8080 here.

# ---- build: compilers and -dev packages, used only to produce four binaries ----
FROM debian:bookworm-slim AS build
RUN apt-get update \
	&& DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
		gcc libc6-dev make cmake pkg-config \
		libevent-dev libjansson-dev libcap-dev libseccomp-dev libpython3.11-dev \
	&& rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# The tests are not part of the image (.dockerignore leaves them out of the context), but the
# top-level CMakeLists.txt adds their directory: give it an empty one.
RUN mkdir -p tests && echo '# tests are not built in the image' > tests/CMakeLists.txt \
	&& cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_INSTALL_PREFIX=/usr/local \
	&& cmake --build build -j"$(nproc)" --target sandboxd gatewayd pyexec pyexec-zygote \
	&& strip --strip-debug build/sandboxd build/gatewayd build/pyexec build/pyexec-zygote

# ---- runtime: the jail's Python (Debian's 3.11 with numpy and pandas) and the C libraries ----
# (libpython3.11: the warm path's zygote embeds the same interpreter the cold path execs.)
FROM debian:bookworm-slim
RUN apt-get update \
	&& DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
		python3 python3-numpy python3-pandas libpython3.11 \
		libevent-2.1-7 libjansson4 libcap2 libseccomp2 \
	&& rm -rf /var/lib/apt/lists/*
# The gateway's account: the one non-root peer sandboxd accepts on its socket. Made here so
# the launcher finds it and the uid is fixed in the image.
RUN useradd --system --user-group --no-create-home --home-dir /nonexistent \
	--shell /usr/sbin/nologin pyexec
# The installed layout: sandboxd finds its runner and zygote in <bindir>/../lib/pyexec/, and the
# launcher finds both daemons next to itself.
COPY --from=build /src/build/sandboxd /src/build/gatewayd /usr/local/sbin/
COPY --from=build /src/build/pyexec /usr/local/bin/
COPY --from=build /src/build/pyexec-zygote /usr/local/lib/pyexec/pyexec-zygote
COPY pyrunner/runner.py /usr/local/lib/pyexec/runner.py
COPY systemd/pyexec-run /usr/local/sbin/pyexec-run
RUN chmod 0755 /usr/local/sbin/pyexec-run && chmod 0644 /usr/local/lib/pyexec/runner.py

ENV PORT=8080
EXPOSE 8080
# The launcher stops gatewayd first (it answers the requests in flight, up to its --grace-ms,
# 35 s), then sandboxd, and exits 0. Give the runtime's stop timeout room for that.
STOPSIGNAL SIGTERM
# /health is 200 only when sandboxd is reachable and its start-up canary passed. Python is
# already in the image: no curl just for this.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
	CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen(\
'http://127.0.0.1:%s/health' % os.environ.get('PORT', '8080'), timeout=4)"]
ENTRYPOINT ["/usr/local/sbin/pyexec-run"]
