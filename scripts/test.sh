#!/usr/bin/env bash
# Runs every check of the repository: formatting, lints and all tests of the workspace.
#
# This is the one test command (README, "Two commands") and what CI runs (.ci/run). It first installs what
# the checks need and is missing, so it works on a fresh machine; add system packages to install_deps below.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

section() {
    printf '\n==== %s ====\n' "$*"
}

# Installs Debian packages for commands the tests need, only when a command is missing and we are root.
# Add entries to DEPS as "command:debian-package" (e.g. "verilator:verilator"). The QEMU VFIO test installs its
# own packages (QEMU from bookworm-backports, Debian's kernel, busybox) through scripts/qemu-vfio-test.sh.
DEPS=("python3:python3" "pip3:python3-pip")
install_deps() {
    local missing=() entry
    for entry in "${DEPS[@]}"; do
        command -v "${entry%%:*}" >/dev/null 2>&1 || missing+=("${entry#*:}")
    done
    if [ "${#missing[@]}" -eq 0 ]; then
        echo "system packages: nothing missing"
        return 0
    fi
    if [ "$(id -u)" -ne 0 ]; then
        echo "missing packages: ${missing[*]}; install them (apt-get install ${missing[*]}) or run as root" >&2
        exit 1
    fi
    echo "installing: ${missing[*]}"
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
}

# The HDL tests' external tools (Verilator's lint, Yosys's synthesis). Installed like DEPS when we are root;
# otherwise a missing one is reported and the tests that need it skip with a message.
HDL_DEPS=("verilator:verilator" "yosys:yosys")
install_hdl_deps() {
    local missing=() entry
    for entry in "${HDL_DEPS[@]}"; do
        command -v "${entry%%:*}" >/dev/null 2>&1 || missing+=("${entry#*:}")
    done
    if [ "${#missing[@]}" -eq 0 ]; then
        echo "HDL tools: nothing missing"
    elif [ "$(id -u)" -ne 0 ]; then
        echo "HDL tools missing: ${missing[*]}; their tests will skip (install them: apt-get install ${missing[*]})" >&2
    else
        echo "installing HDL tools: ${missing[*]}"
        apt-get update
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
    fi
}

section "dependencies"
for tool in cargo rustc; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "$tool not found: install the Rust toolchain (rustup, https://rustup.rs) first" >&2
        exit 1
    fi
done
for sub in fmt clippy; do
    if ! cargo "$sub" --version >/dev/null 2>&1; then
        echo "cargo $sub not found: add it to the toolchain (rustup component add ${sub/fmt/rustfmt})" >&2
        exit 1
    fi
done
cargo --version
install_deps
install_hdl_deps

section "python test dependencies: onnx 1.18.0 (the last wheel shipping the ONNX backend node tests), onnxruntime, pillow, numpy"
PYDEPS=("onnx==1.18.0" onnxruntime pillow numpy)
python3 -m pip install --quiet --disable-pip-version-check "${PYDEPS[@]}" ||
    python3 -m pip install --quiet --disable-pip-version-check --break-system-packages "${PYDEPS[@]}"
# The tests that compare with PIL and onnxruntime must run here, not skip.
export SYSTOLE_REQUIRE_PIL=1
# The HDL lint and synthesis tests must run, not skip, wherever the tools could be installed.
if command -v verilator >/dev/null 2>&1 && command -v yosys >/dev/null 2>&1; then
    export SYSTOLE_REQUIRE_HDL_TOOLS=1
fi

section "dependencies of the QEMU VFIO test: scripts/qemu-vfio-test.sh --install-only"
./scripts/qemu-vfio-test.sh --install-only
export SYSTOLE_QEMU_TESTS=1

section "format: cargo fmt --all -- --check"
cargo fmt --all -- --check

section "lint: cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

section "test: cargo test --workspace"
cargo test --workspace

section "all checks passed"
