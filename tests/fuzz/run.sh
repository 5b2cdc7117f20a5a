#!/usr/bin/env bash
# Build the libFuzzer harnesses (clang, -DAVEMO_FUZZ=ON: ASan + UBSan + coverage) and run
# each for SECONDS (default 60), one after the other; exit 1 on the first crash.
#   tests/fuzz/run.sh [SECONDS]
# Environment: FUZZ_BUILD_DIR (default build-fuzz), JOBS (build jobs, default 1),
# FUZZ_HARNESSES (e.g. "fuzz_media fuzz_model"; default every tests/fuzz/fuzz_*.c).
# New inputs go to $FUZZ_BUILD_DIR/fuzz-corpus/<name>/ (the seeds in tests/fuzz/corpus stay as
# they are); a crash leaves its input in $FUZZ_BUILD_DIR/fuzz-artifacts/<name>/: copy it to
# tests/fuzz/regressions/<name>/ with the fix, and the ctest fuzz_<name>_replay keeps it fixed.
set -euo pipefail
seconds=${1:-60}
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
build=${FUZZ_BUILD_DIR:-$src/build-fuzz}
case "$build" in /*) ;; *) build=$src/$build ;; esac

CC=${CC:-clang} cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DAVEMO_FUZZ=ON \
  -DAVEMO_WERROR=OFF >/dev/null
harnesses=${FUZZ_HARNESSES:-$(cd "$here" && ls fuzz_*.c | sed 's/\.c$//')}
# shellcheck disable=SC2086
cmake --build "$build" -j "${JOBS:-1}" --target $harnesses >/dev/null

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
summary=""
for harness in $harnesses; do
  name=${harness#fuzz_}
  work=$build/fuzz-corpus/$name
  artifacts=$build/fuzz-artifacts/$name
  log=$build/fuzz-$name.log
  mkdir -p "$work" "$artifacts"
  echo "== $harness: ${seconds} s"
  set +e
  "$build/tests/fuzz/$harness" -max_total_time="$seconds" -timeout=30 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$artifacts/" "$work" "$here/corpus/$name" >"$log" 2>&1
  rc=$?
  set -e
  done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -1 || true)
  if [ "$rc" != 0 ]; then
    tail -60 "$log"
    echo "$harness: CRASH (exit $rc); input saved in $artifacts/, log $log" >&2
    exit 1
  fi
  echo "$done_line"
  summary+="$harness: $done_line"$'\n'
done
echo "== fuzzing passed (${seconds} s each)"
printf '%s' "$summary"
