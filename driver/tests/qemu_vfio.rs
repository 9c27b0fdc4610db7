//! The full-system test of the VFIO layer: `scripts/qemu-vfio-test.sh` boots Linux in QEMU with an emulated
//! IOMMU and QEMU's edu device and runs `vfio-edu-selftest` against the kernel's real VFIO.
//!
//! It runs only when `SYSTOLE_QEMU_TESTS=1` (the project's test command sets it after installing what the
//! script needs; CI always runs it), because it needs QEMU, a downloaded kernel and root to install them.
//! Both directions are checked: the selftest must pass, and with a deliberate bug it must fail.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;

/// The two runs share the build directory, the download cache and apt, so they take turns.
static SERIAL: Mutex<()> = Mutex::new(());

fn enabled(test: &str) -> bool {
    if std::env::var("SYSTOLE_QEMU_TESTS").as_deref() == Ok("1") {
        return true;
    }
    println!(
        "{test}: skipped: set SYSTOLE_QEMU_TESTS=1 to boot Linux in QEMU and test VFIO against it \
         (scripts/test.sh does; it needs QEMU >= 10 and a Debian kernel, which scripts/qemu-vfio-test.sh \
         installs as root on Debian 12)"
    );
    false
}

/// Runs the script with `args`; returns whether it exited 0, and its output.
fn run_script(args: &[&str]) -> (bool, String) {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/qemu-vfio-test.sh");
    let out = Command::new("bash")
        .arg(&script)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

#[test]
fn vfio_selftest_passes_in_qemu() {
    if !enabled("vfio_selftest_passes_in_qemu") {
        return;
    }
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (ok, out) = run_script(&[]);
    println!("{out}");
    assert!(ok, "scripts/qemu-vfio-test.sh failed:\n{out}");
    assert!(out.contains("SYSTOLE-VFIO-SELFTEST: PASS"), "no PASS line in:\n{out}");
}

#[test]
fn vfio_selftest_fails_with_a_bar_offset_bug() {
    if !enabled("vfio_selftest_fails_with_a_bar_offset_bug") {
        return;
    }
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (ok, out) = run_script(&["--expect-fail"]);
    println!("{out}");
    assert!(ok, "scripts/qemu-vfio-test.sh --expect-fail failed:\n{out}");
    assert!(out.contains("SYSTOLE-VFIO-SELFTEST: FAIL"), "no FAIL line in:\n{out}");
    assert!(!out.contains("SYSTOLE-VFIO-SELFTEST: PASS"), "the buggy selftest passed:\n{out}");
}
