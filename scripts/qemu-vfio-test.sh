#!/usr/bin/env bash
# Full-system test of the driver's VFIO layer: boots a Debian Linux kernel in QEMU with an emulated Intel
# IOMMU and QEMU's `edu` teaching device, binds the device to vfio-pci, and runs vfio-edu-selftest
# (driver/src/bin/vfio-edu-selftest.rs) against the kernel's real VFIO: config space, bus mastering, BAR0
# registers, DMA through the IOMMU in both directions, and MSI.
#
#   scripts/qemu-vfio-test.sh                 run it; exit 0 only if the selftest prints PASS
#   scripts/qemu-vfio-test.sh --expect-fail   run it with a deliberate BAR-offset bug; exit 0 only if the
#                                             selftest runs and prints FAIL (the test can fail)
#   scripts/qemu-vfio-test.sh --install-only  install and download what the test needs, then stop
#
# What it needs, installed or downloaded only when missing (as root, on Debian 12 "bookworm"):
#   * QEMU >= 10 (qemu-system-x86 from bookworm-backports: bookworm's own QEMU 7.2 has an edu DMA bug); the
#     backports source is derived from the machine's own Debian source (its Suites line rewritten);
#   * cpio;
#   * a kernel and its modules: linux-image-amd64 (Debian 12: 6.1, with vfio, vfio_iommu_type1 and vfio-pci
#     as modules and the Intel IOMMU built in), fetched with `apt-get download` and unpacked with
#     `dpkg-deb -x` into the cache, never installed;
#   * busybox-static, also only unpacked into the cache.
# Downloads and unpacked files are cached in target/qemu-cache (or $SYSTOLE_QEMU_CACHE); the statically
# linked selftest is built in target/qemu, apart from the normal build. Logs: target/qemu/vfio-*.log.
set -euo pipefail
shopt -s inherit_errexit

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

EXPECT=pass
INSTALL_ONLY=0
TIMEOUT=180
QEMU_MIN_MAJOR=10
while [ $# -gt 0 ]; do
    case "$1" in
        --expect-fail) EXPECT=fail ;;
        --install-only) INSTALL_ONLY=1 ;;
        --timeout)
            TIMEOUT=${2:?--timeout needs a number of seconds}
            shift
            ;;
        -h | --help)
            sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
            exit 0
            ;;
        *)
            echo "qemu-vfio-test: unknown argument $1 (try --help)" >&2
            exit 2
            ;;
    esac
    shift
done

CACHE=${SYSTOLE_QEMU_CACHE:-$ROOT/target/qemu-cache}
BUILD_DIR=$ROOT/target/qemu
TRIPLE=x86_64-unknown-linux-gnu
SELFTEST=$BUILD_DIR/$TRIPLE/release/vfio-edu-selftest
mkdir -p "$CACHE" "$BUILD_DIR"

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
say() { printf 'qemu-vfio-test: %s\n' "$*"; }
die() {
    printf 'qemu-vfio-test: error: %s\n' "$*" >&2
    exit 1
}

T_START=$(now)

# ---- installing what is missing -------------------------------------------------------------------------

APT_UPDATED=0
apt_update() {
    if [ "$APT_UPDATED" -eq 0 ]; then
        apt-get update -qq
        APT_UPDATED=1
    fi
}

need_root_debian() {
    if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        die "$1 is missing; this script installs it only as root on Debian 12 (bookworm). Install it yourself, then rerun."
    fi
}

# Prints QEMU's major version, or nothing when QEMU is not installed.
qemu_major() {
    command -v qemu-system-x86_64 >/dev/null 2>&1 || return 0
    { qemu-system-x86_64 --version 2>/dev/null || true; } | sed -n '1s/.*version \([0-9][0-9]*\)\..*/\1/p'
}

# Writes an apt source for bookworm-backports, derived from the stanza of the machine's own Debian source
# that lists the `bookworm` suite (same URIs, components and key; only the Suites line differs).
BACKPORTS_SOURCE=/etc/apt/sources.list.d/systole-bookworm-backports.sources
add_backports_source() {
    [ -f "$BACKPORTS_SOURCE" ] && return 0
    local src=/etc/apt/sources.list.d/debian.sources
    [ -f "$src" ] || die "cannot derive a bookworm-backports source: $src does not exist"
    local stanza
    stanza=$(awk '
        BEGIN { RS = "" }
        !done {
            n = split($0, line, "\n"); hit = 0
            for (i = 1; i <= n; i++) if (line[i] ~ /^Suites:/) {
                m = split(substr(line[i], 8), w, /[ \t]+/)
                for (j = 1; j <= m; j++) if (w[j] == "bookworm") hit = 1
            }
            if (hit) {
                for (i = 1; i <= n; i++) {
                    if (line[i] ~ /^#/) continue
                    if (line[i] ~ /^Suites:/) line[i] = "Suites: bookworm-backports"
                    print line[i]
                }
                done = 1
            }
        }' "$src")
    [ -n "$stanza" ] || die "cannot derive a bookworm-backports source: no stanza of $src lists the bookworm suite"
    say "adding the bookworm-backports apt source ($BACKPORTS_SOURCE)"
    printf '%s\n' "$stanza" >"$BACKPORTS_SOURCE"
    APT_UPDATED=0
}

ensure_qemu() {
    local major
    major=$(qemu_major)
    if [ -n "$major" ] && [ "$major" -ge "$QEMU_MIN_MAJOR" ]; then
        return 0
    fi
    need_root_debian "QEMU >= $QEMU_MIN_MAJOR (found: ${major:-none})"
    add_backports_source
    apt_update
    say "installing qemu-system-x86 from bookworm-backports"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends -t bookworm-backports \
        qemu-system-x86 >/dev/null
    major=$(qemu_major)
    if [ -z "$major" ] || [ "$major" -lt "$QEMU_MIN_MAJOR" ]; then
        die "installed QEMU is version ${major:-none}, need >= $QEMU_MIN_MAJOR"
    fi
}

ensure_cpio() {
    command -v cpio >/dev/null 2>&1 && return 0
    need_root_debian cpio
    apt_update
    say "installing cpio"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends cpio >/dev/null
}

# Downloads Debian package $1 into $CACHE/debs (once) and unpacks it into directory $2.
fetch_deb() {
    local pkg=$1 dest=$2 deb
    mkdir -p "$CACHE/debs"
    deb=$(find "$CACHE/debs" -maxdepth 1 -name "${pkg}_*.deb" | sort | tail -n 1)
    if [ -z "$deb" ]; then
        need_root_debian "$pkg"
        apt_update
        say "downloading $pkg"
        # As root, apt-get download warns that it runs unsandboxed (user _apt cannot write here): harmless.
        local out
        if ! out=$(cd "$CACHE/debs" && apt-get download -qq "$pkg" 2>&1); then
            printf '%s\n' "$out" >&2
            die "apt-get download $pkg failed"
        fi
        deb=$(find "$CACHE/debs" -maxdepth 1 -name "${pkg}_*.deb" | sort | tail -n 1)
        [ -n "$deb" ] || die "apt-get download $pkg produced no .deb"
    fi
    rm -rf "$dest.tmp"
    mkdir -p "$dest.tmp"
    dpkg-deb -x "$deb" "$dest.tmp"
    rm -rf "$dest"
    mv "$dest.tmp" "$dest"
}

KERNEL_DIR=$CACHE/kernel
ensure_kernel() {
    if [ -f "$KERNEL_DIR/ready" ]; then
        return 0
    fi
    need_root_debian "a Linux kernel for the VM"
    apt_update
    # linux-image-amd64 is a metapackage: the kernel is the versioned package it depends on.
    local pkg
    pkg=$(apt-cache depends linux-image-amd64 2>/dev/null |
        sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*\)$/\1/p' | head -n 1)
    [ -n "$pkg" ] || die "cannot find the kernel package linux-image-amd64 depends on"
    fetch_deb "$pkg" "$KERNEL_DIR"
    # A kernel package's modules.dep is made by depmod when the package is installed; this one is only
    # unpacked, so make it here, with busybox's depmod.
    local dir kver
    for dir in "$KERNEL_DIR"/lib/modules/*/; do
        kver=$(basename "$dir")
        if [ ! -f "$dir/modules.dep" ]; then
            say "generating modules.dep for $kver"
            "$BUSYBOX_DIR/bin/busybox" depmod -b "$KERNEL_DIR" "$kver"
        fi
    done
    touch "$KERNEL_DIR/ready"
}

BUSYBOX_DIR=$CACHE/busybox
ensure_busybox() {
    if [ -x "$BUSYBOX_DIR/bin/busybox" ]; then
        return 0
    fi
    fetch_deb busybox-static "$BUSYBOX_DIR"
    [ -x "$BUSYBOX_DIR/bin/busybox" ] || die "busybox-static has no bin/busybox"
}

ensure_qemu
ensure_cpio
ensure_busybox
ensure_kernel
for tool in qemu-system-x86_64 cpio timeout cargo; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is missing"
done
T_INSTALLED=$(now)
say "dependencies ready in $(elapsed "$T_START") s ($(qemu-system-x86_64 --version | head -n 1))"
if [ "$INSTALL_ONLY" -eq 1 ]; then
    exit 0
fi

# ---- the selftest, linked statically so that it runs in a bare initramfs ---------------------------------

say "building vfio-edu-selftest (static, in target/qemu)"
# The target triple is explicit so that RUSTFLAGS reach only the selftest, not build scripts.
env -u CARGO_ENCODED_RUSTFLAGS RUSTFLAGS="-C target-feature=+crt-static" \
    cargo build --quiet --release -p driver --bin vfio-edu-selftest --target "$TRIPLE" --target-dir "$BUILD_DIR"
[ -x "$SELFTEST" ] || die "the build produced no $SELFTEST"
T_BUILT=$(now)

# ---- the initramfs --------------------------------------------------------------------------------------

KVER=$(find "$KERNEL_DIR/lib/modules" -mindepth 1 -maxdepth 1 -type d -printf '%f\n' | sort | tail -n 1)
[ -n "$KVER" ] || die "no modules directory in the unpacked kernel"
VMLINUZ=$KERNEL_DIR/boot/vmlinuz-$KVER
[ -f "$VMLINUZ" ] || die "no kernel image $VMLINUZ"
MODDIR=$KERNEL_DIR/lib/modules/$KVER

[ -f "$MODDIR/modules.dep" ] || die "no $MODDIR/modules.dep (delete $KERNEL_DIR to unpack the kernel again)"

# Prints the module files (paths relative to $MODDIR, as in modules.dep) that the modules named in the
# arguments need, each once, dependencies before the modules that use them: the insmod order.
resolve_modules() {
    local -A seen=()
    visit() {
        local mod=$1 dep deps
        [ -n "${seen[$mod]:-}" ] && return 0
        seen[$mod]=1
        read -r -a deps <<<"$(awk -v m="$mod" -F': *' '$1 == m { print $2 }' "$MODDIR/modules.dep")"
        for dep in "${deps[@]}"; do
            visit "$dep"
        done
        echo "$mod"
    }
    local name rel
    for name in "$@"; do
        # modules.dep names files; a module's name is its file name with `-` read as `_`.
        rel=$(awk -F: -v n="$name" '{ f = $1; sub(".*/", "", f); sub(/\.ko(\.(xz|zst|gz))?$/, "", f);
            gsub("-", "_", f); if (f == n) { print $1; exit } }' "$MODDIR/modules.dep")
        [ -n "$rel" ] || die "kernel $KVER has no module $name"
        visit "$rel"
    done
}
MODULES=$(resolve_modules vfio_iommu_type1 vfio_pci)

INITRD_DIR=$BUILD_DIR/initramfs
rm -rf "$INITRD_DIR"
mkdir -p "$INITRD_DIR"/{bin,lib/modules,proc,sys,dev,tmp}
cp "$BUSYBOX_DIR/bin/busybox" "$INITRD_DIR/bin/busybox"
cp "$SELFTEST" "$INITRD_DIR/bin/vfio-edu-selftest"
: >"$INITRD_DIR/modules.order"
for rel in $MODULES; do
    base=${rel##*/}
    case "$base" in
        *.ko.xz) xz -dc "$MODDIR/$rel" >"$INITRD_DIR/lib/modules/${base%.xz}" ;;
        *.ko.zst) zstd -qdc "$MODDIR/$rel" >"$INITRD_DIR/lib/modules/${base%.zst}" ;;
        *.ko.gz) gzip -dc "$MODDIR/$rel" >"$INITRD_DIR/lib/modules/${base%.gz}" ;;
        *.ko) cp "$MODDIR/$rel" "$INITRD_DIR/lib/modules/$base" ;;
        *) die "unknown module file $rel" ;;
    esac
    echo "${base%.ko*}.ko" >>"$INITRD_DIR/modules.order"
done
say "modules for the VM: $(tr '\n' ' ' <"$INITRD_DIR/modules.order")"

cat >"$INITRD_DIR/init" <<'EOF'
#!/bin/busybox sh
# PID 1 of the test VM: load VFIO, hand the edu device to vfio-pci, run the selftest, power off.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
setup_fail() {
    echo "SYSTOLE-VFIO-SETUP: FAIL $*"
    poweroff -f
}
echo "init: kernel $(uname -r); IOMMU groups: $(ls /sys/kernel/iommu_groups | wc -l)"
for m in $(cat /modules.order); do
    insmod "/lib/modules/$m" || setup_fail "insmod $m"
done
EDU=
for d in /sys/bus/pci/devices/*; do
    if [ "$(cat "$d/vendor")" = 0x1234 ] && [ "$(cat "$d/device")" = 0x11e8 ]; then
        EDU=${d##*/}
    fi
done
[ -n "$EDU" ] || setup_fail "no edu device (1234:11e8) on the PCI bus"
DEV=/sys/bus/pci/devices/$EDU
echo vfio-pci >"$DEV/driver_override" || setup_fail "driver_override"
if [ -e "$DEV/driver" ]; then
    echo "$EDU" >"$DEV/driver/unbind" || setup_fail "unbind"
fi
echo "$EDU" >/sys/bus/pci/drivers_probe || setup_fail "drivers_probe"
DRIVER=$(basename "$(readlink "$DEV/driver")")
[ "$DRIVER" = vfio-pci ] || setup_fail "edu is bound to '$DRIVER', not vfio-pci, after drivers_probe"
echo "init: edu at $EDU, driver $DRIVER, IOMMU group $(basename "$(readlink "$DEV/iommu_group")")"
ARGS=
for w in $(cat /proc/cmdline); do
    [ "$w" = systole_selftest=bar-offset-bug ] && ARGS=--bar-offset-bug
done
/bin/vfio-edu-selftest $ARGS "$EDU"
echo "init: vfio-edu-selftest exited with status $?"
poweroff -f
EOF
chmod +x "$INITRD_DIR/init"
INITRD=$BUILD_DIR/initramfs.cpio
(cd "$INITRD_DIR" && find . -print | cpio --quiet -o -H newc >"$INITRD")

# ---- boot ------------------------------------------------------------------------------------------------

APPEND="console=ttyS0 intel_iommu=on panic=-1"
LOG=$BUILD_DIR/vfio-pass.log
if [ "$EXPECT" = fail ]; then
    APPEND="$APPEND systole_selftest=bar-offset-bug"
    LOG=$BUILD_DIR/vfio-expect-fail.log
fi
say "booting Linux $KVER in QEMU (timeout ${TIMEOUT} s; console log: ${LOG#"$ROOT"/})"
T_BOOT=$(now)
set +e
timeout "$TIMEOUT" qemu-system-x86_64 \
    -accel tcg,thread=multi -machine q35 -cpu max -smp 2 -m 512M \
    -device intel-iommu -device edu \
    -nic none -vga none \
    -kernel "$VMLINUZ" -initrd "$INITRD" -append "$APPEND" \
    -nographic -no-reboot </dev/null >"$LOG" 2>&1
QEMU_STATUS=$?
set -e
T_DONE=$(now)

# The console has CRLF line ends.
sed -n 's/\r$//; /^init: \|^selftest: \|SYSTOLE-VFIO-/p' "$LOG" | sed 's/^/  | /'
say "times: dependencies $(awk -v a="$T_START" -v b="$T_INSTALLED" 'BEGIN { printf "%.1f", b - a }') s," \
    "build $(awk -v a="$T_INSTALLED" -v b="$T_BUILT" 'BEGIN { printf "%.1f", b - a }') s," \
    "boot and test $(awk -v a="$T_BOOT" -v b="$T_DONE" 'BEGIN { printf "%.1f", b - a }') s," \
    "total $(elapsed "$T_START") s"

fail_with_log() {
    echo "---- last lines of the console log ($LOG) ----" >&2
    tr -d '\r' <"$LOG" | tail -n 40 >&2
    die "$*"
}
if [ "$QEMU_STATUS" -eq 124 ]; then
    fail_with_log "QEMU did not finish within $TIMEOUT s"
fi
if grep -q 'SYSTOLE-VFIO-SETUP: FAIL' "$LOG"; then
    fail_with_log "the VM's setup failed before the selftest ran"
fi
if [ "$EXPECT" = pass ]; then
    grep -q '^SYSTOLE-VFIO-SELFTEST: PASS' "$LOG" || fail_with_log "the selftest did not pass"
    say "PASS: the VFIO selftest passed against the kernel's VFIO"
else
    # The bug must be caught by the selftest itself, after the VFIO plumbing worked (it announces the bug
    # only once the device is open and BAR0 is mapped).
    grep -q '^selftest: --bar-offset-bug' "$LOG" || fail_with_log "the selftest did not get as far as the bug"
    grep -q '^SYSTOLE-VFIO-SELFTEST: FAIL' "$LOG" || fail_with_log "the selftest did not fail despite the bug"
    say "PASS: with the deliberate BAR-offset bug the selftest failed, as it must"
fi
