#!/bin/sh
# Lint the hand-written RTL with Verilator (no Vivado needed). Usage: lint/lint.sh [ENGINE.v WAIVERS.vlt]
# Without arguments only the bridge is checked; with the exported engine and its waivers the top is too.
set -e
cd "$(dirname "$0")/.."
verilator --lint-only -Wall --top-module systole_axi_bridge rtl/systole_axi_bridge.v
echo "bridge: lint clean"
if [ -n "$1" ]; then
    verilator --lint-only -Wall --top-module systole_u250_top "$2" lint/top_waivers.vlt \
        lint/xdma_0_stub.v rtl/systole_axi_bridge.v rtl/systole_u250_top.v "$1"
    echo "top + engine: lint clean"
fi
