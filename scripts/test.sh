#!/usr/bin/env bash
# The project's test command (README, and .ci/run on CI): installs the system packages the
# tests need, then builds and runs every test of the default workspace members.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-test-deps.sh
# Tests render the editor through wgpu on Mesa's software Vulkan driver; no display is needed.
export WGPU_BACKEND="${WGPU_BACKEND:-vulkan}"
cargo test --locked "$@"
