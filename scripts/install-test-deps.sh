#!/usr/bin/env bash
# Installs the system packages the test suite needs on a fresh Debian/Ubuntu machine:
# - a C compiler (the C-plugin test compiles a plugin from the generated header with `cc`);
# - Mesa's software Vulkan driver (lavapipe), so the editor's GUI tests render with wgpu
#   without a GPU or a display.
# Safe to run repeatedly; does nothing when everything is present.
set -euo pipefail

need=()
command -v cc >/dev/null 2>&1 || need+=(gcc libc6-dev)
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
# lavapipe's ICD file is what the Vulkan loader looks for.
if ! ls /usr/share/vulkan/icd.d/lvp_icd*.json >/dev/null 2>&1; then
  need+=(mesa-vulkan-drivers libvulkan1)
fi

if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi

echo "install-test-deps: installing ${need[*]}" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
