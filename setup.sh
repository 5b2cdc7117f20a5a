#!/usr/bin/env bash
# avemo setup: install the Debian packages avemo needs, then configure and build.
#   ./setup.sh            install + build (Release) into ./build
#   ./setup.sh --test     install + build + run every test (ctest)
#   ./setup.sh --no-install ...   skip apt-get (packages already there)
# Environment: BUILD_DIR (default build), CMAKE_ARGS (extra cmake arguments), JOBS (default nproc).
set -euo pipefail
cd "$(dirname "$0")"

install=1
run_tests=0
for arg in "$@"; do
  case "$arg" in
    --test) run_tests=1 ;;
    --no-install) install=0 ;;
    -h|--help) sed -n '2,7p' "$0"; exit 0 ;;
    *) echo "setup.sh: unknown option '$arg'" >&2; exit 2 ;;
  esac
done

# Build and run-time libraries (the product), then what only the tests use.
PACKAGES_BUILD="build-essential cmake pkg-config
  libavformat-dev libavcodec-dev libavutil-dev libswresample-dev libswscale-dev
  libfftw3-dev libopenblas-dev libjpeg-dev libmicrohttpd-dev libsqlite3-dev libcjson-dev
  libinih-dev libxml2-dev libcairo2-dev libpq-dev zlib1g-dev opencv-data
  libprotobuf-c-dev protobuf-c-compiler libonnx-dev"
PACKAGES_TEST="libcmocka-dev ffmpeg curl groff-base python3 python3-numpy python3-opencv python3-torch python3-onnx chromium
  clang libclang-rt-14-dev
  postgresql nginx slurm-wlm munge python3-yaml"

if [ "$install" = 1 ]; then
  SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  # shellcheck disable=SC2086
  $SUDO apt-get install -y -qq --no-install-recommends $PACKAGES_BUILD $PACKAGES_TEST >/dev/null
  # The browser test drives Debian's chromium with playwright-core from npm (Node >= 18; the
  # lock file pins the version).  Without node it is skipped, and says so.
  if ! command -v npm >/dev/null 2>&1; then
    $SUDO apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null || true
  fi
  if command -v npm >/dev/null 2>&1; then
    (cd tests/serve/browser && npm ci --no-audit --no-fund --loglevel=error) ||
      echo "setup.sh: npm ci failed; the browser test will be skipped" >&2
    # onnxruntime-node runs the ONNX exports (ctest -R onnx).  Its install script downloads
    # GPU libraries from outside the registry; the CPU library it needs is inside the package.
    (cd tests/nn/onnx && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error) ||
      echo "setup.sh: npm ci failed; the ONNX runtime tests will be skipped" >&2
  fi
fi

BUILD_DIR=${BUILD_DIR:-build}
JOBS=${JOBS:-$(nproc)}
# shellcheck disable=SC2086
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release ${CMAKE_ARGS:-}
cmake --build "$BUILD_DIR" -j "$JOBS"

if [ "$run_tests" = 1 ]; then
  (cd "$BUILD_DIR" && ctest --output-on-failure -j "$JOBS")
fi
