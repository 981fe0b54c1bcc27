#!/bin/bash
# verify-units.sh BUILD_DIR - ctest `vm.units`: `make install` puts the units where systemd
# reads them, names the installed binaries in ExecStart, and `systemd-analyze verify` finds
# nothing to say about them. Runs on any host with systemd's tools; systemd need not be PID 1.
set -euo pipefail
BUILD=$(cd "${1:?usage: verify-units.sh BUILD_DIR}" && pwd)
command -v systemd-analyze >/dev/null || { echo "SKIPPED: no systemd-analyze (package systemd)"; exit 77; }
ROOT=$(mktemp -d "${TMPDIR:-/tmp}/pyexec-units.XXXXXX")
trap 'rm -rf "$ROOT"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

for prefix in /usr/local /opt/pyexec; do
  D=$ROOT${prefix//\//_}
  DESTDIR=$D cmake --install "$BUILD" --prefix "$prefix" >/dev/null
  case $prefix in
    /usr/local) units=$prefix/lib/systemd/system; sysusers=$prefix/lib/sysusers.d ;;
    *) units=/etc/systemd/system; sysusers=/etc/sysusers.d ;;   # not on systemd's unit path
  esac
  for f in "$units"/pyexec-sandboxd.service "$units"/pyexec-gatewayd.service \
           "$units"/pyexec.slice "$sysusers"/pyexec.conf "$prefix"/sbin/sandboxd \
           "$prefix"/sbin/gatewayd "$prefix"/bin/pyexec "$prefix"/lib/pyexec/runner.py; do
    [ -e "$D$f" ] || fail "prefix $prefix: $f not installed"
  done
  grep -qx "ExecStart=$prefix/sbin/sandboxd \$SANDBOXD_OPTS" "$D$units/pyexec-sandboxd.service" ||
    fail "prefix $prefix: sandboxd's ExecStart: $(grep ^ExecStart= "$D$units/pyexec-sandboxd.service")"
  grep -qx "ExecStart=$prefix/sbin/gatewayd \$GATEWAYD_OPTS" "$D$units/pyexec-gatewayd.service" ||
    fail "prefix $prefix: gatewayd's ExecStart: $(grep ^ExecStart= "$D$units/pyexec-gatewayd.service")"
  # verify --root needs the targets our units name (multi-user.target, sysinit.target...).
  mkdir -p "$D/lib/systemd"
  cp -a /lib/systemd/system "$D/lib/systemd/"
  out=$(systemd-analyze verify --root="$D" "$units"/pyexec-sandboxd.service \
        "$units"/pyexec-gatewayd.service "$units"/pyexec.slice 2>&1) || fail "prefix $prefix: $out"
  # It warns without failing (an unknown key, say): any output is a finding.
  [ -z "$out" ] || fail "prefix $prefix: systemd-analyze verify says: $out"
  echo "ok: prefix $prefix: units in $units verify cleanly"
done
