#!/bin/bash
# vmtest.sh - boot Debian 12 with systemd as PID 1 and cgroup v2 under qemu (TCG), run a
# payload's /harness/run inside, and hand back its output and exit code.
# The design, its measurements and its traps are in ../shared/VM-RECIPE.md; this is that
# recipe with the image cached and shared between runs.
#
#   vmtest.sh dir                # prints the image directory (cache key: this file's hash)
#   vmtest.sh ensure             # builds the image there unless it is complete (~1-2 min)
#   vmtest.sh run PAYLOAD OUT    # ~8 s boot + test time; PAYLOAD's tree is copied onto /
#     PAYLOAD/harness/run is executed as root under systemd; its exit code is ours.
#     OUT/results.txt = its output, OUT/console.log = serial console,
#     OUT/share = host side of /results in the guest (9p).
#
# Environment: VMTEST_CACHE (default /var/cache/pyexec-vmtest), VMTEST_TIMEOUT (s, default
# 1500), VMTEST_MEM (MiB, default 2048).
# Host needs (as root): qemu-system-x86 debootstrap cpio e2fsprogs python3.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${VMTEST_CACHE:-/var/cache/pyexec-vmtest}
KEY=$(sha256sum "$HERE/vmtest.sh" | cut -c1-16)   # any change to this file: a new image
W=$CACHE/$KEY
# python3-pytest, python3-requests and curl: so the project's own tests can run in the guest.
PKGS=systemd,systemd-sysv,dbus,kmod,python3,python3-numpy,python3-pandas,libpython3.11,libevent-2.1-7,libjansson4,libcap2,libseccomp2,iproute2,procps,python3-pytest,python3-requests,curl
STAGE0_MODS="drivers/virtio/virtio_ring drivers/virtio/virtio drivers/virtio/virtio_pci_modern_dev
  drivers/virtio/virtio_pci_legacy_dev drivers/virtio/virtio_pci drivers/block/virtio_blk lib/crc16
  fs/mbcache fs/jbd2/jbd2 crypto/crc32c_generic fs/ext4/ext4"
# extra modules made loadable (modprobe) inside the guest
GUEST_MODS="drivers/virtio drivers/char/virtio_console.ko net/9p/9pnet.ko net/9p/9pnet_virtio.ko
  fs/9p fs/netfs fs/fscache fs/overlayfs drivers/block/loop.ko fs/squashfs"

mirror() {  # the host's Debian mirror (first non-security URI, deb822 or one-line format)
  { awk '/^URIs:/{for(i=2;i<=NF;i++)print $i}' /etc/apt/sources.list.d/*.sources
    awk '$1=="deb"{for(i=2;i<=NF;i++) if($i ~ /^(https?|file):/){print $i; break}}' \
      /etc/apt/sources.list /etc/apt/sources.list.d/*.list
  } 2>/dev/null | grep -v -- '-security' | head -n1 || true
}

build() {
  case $W in /|"") echo "bad image directory" >&2; exit 1;; esac
  rm -rf "$W"; mkdir -p "$W/dl"
  local m; m=$(mirror); [ -n "$m" ] || { echo "no Debian mirror in apt sources" >&2; exit 1; }
  debootstrap --variant=minbase --include="$PKGS" bookworm "$W/root" "$m"

  # kernel + busybox-static from the archive (not installed on the host)
  (cd "$W/dl" && apt-get download -q -o APT::Sandbox::User=root busybox-static \
     "$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/{print $2; exit}')")
  for d in "$W"/dl/*.deb; do dpkg-deb -x "$d" "$W/dl/x"; done
  local kver; kver=$(ls "$W/dl/x/lib/modules"); local K="$W/dl/x/lib/modules/$kver/kernel"
  cp "$W"/dl/x/boot/vmlinuz-"$kver" "$W/vmlinuz"
  # bzImage -> uncompressed ELF vmlinux: qemu then boots it via PVH and skips the
  # real-mode setup + XZ self-decompression (~2.5 s under TCG). Optional.
  python3 - "$W/vmlinuz" "$W/vmlinux" <<'EOF' || rm -f "$W/vmlinux"
import lzma, sys
d = open(sys.argv[1], 'rb').read(); off = d.find(b'\xfd7zXZ\x00')
open(sys.argv[2], 'wb').write(lzma.LZMADecompressor().decompress(d[off:]))
EOF

  # guest root: extra modules, harness service, trimming
  local R="$W/root" p
  mkdir -p "$R/lib/modules/$kver/kernel"
  cp "$W"/dl/x/lib/modules/"$kver"/modules.{order,builtin,builtin.modinfo} "$R/lib/modules/$kver/"
  for p in $GUEST_MODS $(for s in $STAGE0_MODS; do echo "$s.ko"; done); do
    mkdir -p "$R/lib/modules/$kver/kernel/$(dirname "$p")"
    cp -a "$K/$p" "$R/lib/modules/$kver/kernel/$(dirname "$p")/"
  done
  chroot "$R" depmod -a "$kver"
  echo vmtest > "$R/etc/hostname"
  echo 0123456789abcdef0123456789abcdef > "$R/etc/machine-id"   # keep: empty => first-boot logic
  rm -f "$R/etc/initrd-release"                                # must not exist
  cat > "$R/usr/local/sbin/harness-run" <<'EOF'
#!/bin/bash
# Output -> console and ttyS1 (a plain file on the host). Last line carries the rc.
out=/dev/ttyS1; stty -F $out raw -echo 2>/dev/null
modprobe -q 9pnet_virtio; modprobe -q 9p; mkdir -p /results
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 results /results 2>/dev/null
{
  echo "HARNESS-BEGIN uptime=$(cut -d' ' -f1 /proc/uptime)"
  if [ -x /harness/run ]; then /harness/run; rc=$?; else echo "no /harness/run"; rc=127; fi
  sync; mountpoint -q /results && umount /results
  echo "HARNESS-EXIT rc=$rc uptime=$(cut -d' ' -f1 /proc/uptime)"
} 2>&1 | tee $out
EOF
  chmod 755 "$R/usr/local/sbin/harness-run"
  cat > "$R/etc/systemd/system/harness.service" <<'EOF'
[Unit]
Description=Run /harness/run, then power off
After=basic.target
SuccessAction=poweroff
FailureAction=poweroff
[Service]
Type=oneshot
ExecStart=/usr/local/sbin/harness-run
StandardOutput=journal+console
TimeoutStartSec=infinity
[Install]
WantedBy=multi-user.target
EOF
  chroot "$R" systemctl -q enable harness.service
  chroot "$R" systemctl -q mask serial-getty@ttyS0.service getty@tty1.service console-getty.service
  rm -rf "$R"/var/cache/apt/archives/*.deb "$R"/var/cache/apt/*.bin "$R"/var/lib/apt/lists/* \
         "$R"/usr/share/doc/* "$R"/usr/share/man/* "$R"/usr/share/locale/* "$R"/usr/share/info/*
  # The accounts of the image: a payload runs systemd-sysusers against a copy of these.
  mkdir -p "$W/etc"
  cp -a "$R"/etc/{passwd,group,shadow,gshadow,login.defs} "$W/etc/"

  # root filesystem image: ext4 built from the tree, no mount/loop needed
  local mb; mb=$(du -sm "$R" | cut -f1)
  mke2fs -q -t ext4 -d "$R" -L vmroot -F "$W/root.img" "$(( mb * 13 / 10 + 256 ))M"

  # stage 0 initramfs: busybox + virtio-blk/ext4 modules; mounts /dev/vda, copies
  # /payload (appended cpio) onto it, switch_root to systemd
  local S="$W/stage0"; mkdir -p "$S/bin" "$S/lib/modules" "$S/dev" "$S/proc" "$S/sys" "$S/newroot"
  cp "$W/dl/x/bin/busybox" "$S/bin/"
  for p in $STAGE0_MODS; do cp "$K/$p.ko" "$S/lib/modules/"; done
  cat > "$S/init" <<'EOF'
#!/bin/busybox sh
B=/bin/busybox
$B mount -t devtmpfs dev /dev
for m in virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio_blk \
         crc16 mbcache jbd2 crc32c_generic ext4; do
  $B insmod /lib/modules/$m.ko || echo "stage0: insmod $m failed"
done
i=0; while [ ! -b /dev/vda ] && [ $i -lt 200 ]; do $B usleep 50000; i=$((i+1)); done
$B mount -t ext4 /dev/vda /newroot || { echo "stage0: cannot mount /dev/vda"; $B poweroff -f; }
[ -d /payload ] && $B cp -a /payload/. /newroot/
$B umount /dev
exec $B switch_root /newroot /lib/systemd/systemd "$@"
EOF
  chmod 755 "$S/init"
  (cd "$S" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) > "$W/stage0.cpio"
  # Only the image is kept: the tree and the downloads are 400 MB more.
  rm -rf "$R" "$W/dl" "$S"
  touch "$W/complete"
  ls -la "$W"
}

ensure() {
  mkdir -p "$CACHE"
  exec 9>"$CACHE/.lock"
  flock 9      # one builder at a time; the others wait, then find the image complete
  if [ -e "$W/complete" ]; then echo "image: cached in $W"; return 0; fi
  # Images of older versions of this script are of no more use.
  find "$CACHE" -mindepth 1 -maxdepth 1 -type d ! -name "$KEY" -exec rm -rf {} +
  build
}

run() {
  local payload=$1 out=$2 t
  [ -e "$W/complete" ] || { echo "no image in $W: run '$0 ensure' first" >&2; exit 1; }
  t=$(mktemp -d "${TMPDIR:-/tmp}/vmtest-run.XXXXXX")
  mkdir -p "$out/share" "$t/p/payload"; rm -f "$out/results.txt" "$out/console.log"
  cp -a "$payload/." "$t/p/payload/"
  (cd "$t/p" && find . | cpio -o -H newc --quiet -R 0:0) > "$t/payload.cpio"
  cat "$W/stage0.cpio" "$t/payload.cpio" > "$t/initrd.cpio"     # concatenated cpio archives
  local kernel="$W/vmlinux"; [ -s "$kernel" ] || kernel="$W/vmlinuz"
  local rc=0
  timeout "${VMTEST_TIMEOUT:-1500}" qemu-system-x86_64 -accel tcg -m "${VMTEST_MEM:-2048}" -smp 2 \
    -nodefaults -no-user-config -display none -monitor none -no-reboot \
    -kernel "$kernel" -initrd "$t/initrd.cpio" \
    -append "console=ttyS0 rdinit=/init panic=-1 quiet systemd.show_status=0 systemd.unified_cgroup_hierarchy=1" \
    -serial "file:$out/console.log" -serial "file:$out/results.txt" \
    -drive "file=$W/root.img,if=virtio,format=raw,snapshot=on" \
    -virtfs "local,path=$out/share,mount_tag=results,security_model=none,id=results" </dev/null || rc=$?
  rm -rf "$t"
  cat "$out/results.txt" 2>/dev/null || true
  [ $rc -eq 0 ] || { echo "qemu exit $rc (124 = timeout)"; tail -n 30 "$out/console.log"; exit 1; }
  rc=$(sed -n 's/^HARNESS-EXIT rc=\([0-9]*\).*/\1/p' "$out/results.txt" | tail -n1)
  [ -n "$rc" ] || { echo "no HARNESS-EXIT line"; tail -n 30 "$out/console.log"; exit 1; }
  exit "$rc"
}

case ${1:-} in
  dir) echo "$W" ;;
  ensure) ensure ;;
  run) shift; [ $# -eq 2 ] || { echo "usage: $0 run PAYLOAD_DIR OUT_DIR" >&2; exit 2; }; run "$@" ;;
  *) echo "usage: $0 dir | ensure | run PAYLOAD_DIR OUT_DIR" >&2; exit 2 ;;
esac
