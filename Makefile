# A thin wrapper: installs what is missing (Debian 12), configures and builds with CMake, and
# runs the daemons or the tests. Everything real lives in CMakeLists.txt and tests/.
BUILD ?= build
BUILD_ASAN ?= build-asan
BUILD_FUZZ ?= build-fuzz
FUZZ_SECONDS ?= 60
JOBS ?= $(shell nproc)
SOCKET ?= /run/pyexec/sandboxd.sock
PREFIX ?= /usr/local
SOAK_JOBS ?= 10000

# Debian packages the build, the jail and the tests need.
DEBS := gcc make cmake pkg-config libevent-dev libjansson-dev libcap-dev libseccomp-dev libpython3.11-dev \
	python3 python3-numpy python3-pandas python3-pytest python3-requests curl procps \
	iproute2 util-linux passwd clang libclang-rt-14-dev valgrind

.PHONY: all deps build user run test test-asan test-valgrind bench soak fuzz check install test-vm clean

all: build

deps:
	@missing=$$(for p in $(DEBS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | \
		grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing:" $$missing; \
		[ "$$(id -u)" = 0 ] || { echo "run as root to install packages" >&2; exit 1; }; \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive \
			apt-get install -y -q --no-install-recommends $$missing; \
	fi

$(BUILD)/CMakeCache.txt: | deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j$(JOBS)

# The account the gateway runs as: the one non-root peer sandboxd accepts.
user:
	@getent passwd pyexec >/dev/null || useradd --system --no-create-home \
		--home-dir /nonexistent --shell /usr/sbin/nologin pyexec

# Both daemons in the foreground on http://127.0.0.1:8080 (PORT=N: 0.0.0.0:N; LISTEN=HOST:PORT
# wins); Ctrl-C stops the gateway, then sandboxd. systemd hosts use the units in systemd/.
run: build user
	exec systemd/pyexec-run --bindir $(BUILD) --socket $(SOCKET) $(if $(LISTEN),--listen $(LISTEN))

# Every test but the full soak (label soak: minutes of both CPUs; `make soak`). Its brief
# version, soak.brief, is an integration test and runs here.
test: build user
	cd $(BUILD) && ctest --output-on-failure -j1 -LE '^soak$$'

# The unit and integration tests again, on daemons built with AddressSanitizer and UBSan (the
# container, VM, fuzz and bench tests stay on the release build; make_run would rebuild it).
test-asan: deps user
	cmake -S . -B $(BUILD_ASAN) -DCMAKE_BUILD_TYPE=Debug -DPYEXEC_SANITIZE=ON
	cmake --build $(BUILD_ASAN) -j$(JOBS)
	cd $(BUILD_ASAN) && ctest --output-on-failure -j1 -L 'unit|integration' -E 'make_run|vm'

# The gateway tests again, with every gatewayd they start under valgrind's memcheck
# (tests/gateway/valgrind-gatewayd): an invalid access, a use of uninitialised memory or a
# definite leak at its exit (SIGTERM) fails the test that stopped it. On the release build:
# memcheck needs no special one, and ASan's runtime and valgrind do not mix.
test-valgrind: build user
	cd $(BUILD) && GATEWAYD_WRAPPER=$(CURDIR)/tests/gateway/valgrind-gatewayd \
		ctest --output-on-failure -V -j1 -R '^gateway\.'

bench: build user
	cd $(BUILD) && ctest --output-on-failure -V -L bench

# SOAK_JOBS mixed jobs (default 10000) at concurrency 16 through both daemons, then a census of
# what they still hold (tests/soak/soak.py); prints jobs/s, p50/p99 per kind, 503s, the census.
soak: build user
	cd $(BUILD) && SOAK_JOBS=$(SOAK_JOBS) ctest --output-on-failure -V -L '^soak$$'

# The installed layout under PREFIX (binaries, runner, systemd units, sysusers.d entry); DESTDIR
# stages it elsewhere. A real install also makes the pyexec account and reloads systemd, so
# `systemctl enable --now pyexec-gatewayd.service` is all that is left.
install: build
	cmake --install $(BUILD) --prefix $(PREFIX)
	@if [ -z "$(DESTDIR)" ]; then \
		if command -v systemd-sysusers >/dev/null; then systemd-sysusers pyexec.conf; \
		else $(MAKE) -s user; fi; \
		if [ -d /run/systemd/system ]; then systemctl daemon-reload; fi; \
	fi

# The systemd units and cgroup v2 on Debian 12 booted under qemu (tests/vm); `make test` runs it too.
test-vm: build
	cd $(BUILD) && ctest --output-on-failure -L '^vm$$'

# Every libFuzzer target (tests/fuzz) for FUZZ_SECONDS, one per CPU at a time, each from a copy of
# its seed corpus, in a clang build of its own (BUILD_FUZZ). Crashes: BUILD_FUZZ/fuzz-run/crashes.
fuzz: deps
	tests/fuzz/run-fuzz --build $(BUILD_FUZZ) --seconds $(FUZZ_SECONDS)

clean:
	rm -rf $(BUILD) $(BUILD_ASAN) $(BUILD_FUZZ)
