#!/bin/sh
# Install avemo into a temporary prefix (cmake --install --prefix), then use it as a user of the
# library would: a program that includes only <avemo/avemo.h>, built once with
# `pkg-config --cflags --libs avemo` and once by a CMake project with find_package(avemo).  Each
# finds the installed models itself (relative to the prefix it was installed to, not the source
# tree) and classifies a fixture clip with the av model and a wav through its companion, the
# installed audio model.  The installed program classifies the wav too.
set -eu
build_dir=$1
data=$2
clip=$data/cremad/1001_DFA_ANG_XX.flv
wav=$data/audio/1001_DFA_ANG_XX.wav
prefix=$(mktemp -d /tmp/avemo_install_XXXXXX)
trap 'rm -rf "$prefix"' EXIT
unset AVEMO_MODEL_DIR AVEMO_DATA_DIR
cmake --install "$build_dir" --prefix "$prefix" >/dev/null

# avemo.pc: its libdir holds the library and its includedir the headers, whatever the libdir
# (lib, lib64 or Debian's lib/x86_64-linux-gnu).
pc=$(find "$prefix" -name avemo.pc)
export PKG_CONFIG_PATH="$(dirname "$pc")"
libdir=$(pkg-config --variable=libdir avemo)
includedir=$(pkg-config --variable=includedir avemo)
echo "avemo.pc: $pc, libdir $libdir, includedir $includedir"
test -e "$libdir/libavemo.so"
test -e "$includedir/avemo/avemo.h"
test "$(pkg-config --variable=prefix avemo)" = "$prefix"

cat > "$prefix/app.c" <<'C'
#include <avemo/avemo.h>
#include <stdio.h>

/* The shipped av model, found by the library; each file's answer and the model that gave it. */
int main(int argc, char **argv)
{
    struct avemo_error err = {0};
    char model[4096];
    avemo_classifier *clf = NULL;
    avemo_classify_ctx *ctx = NULL;
    enum avemo_status st = avemo_default_model(AVEMO_MODE_AV, model, sizeof model, &err);
    if (!st) st = avemo_classifier_open(model, NULL, &clf, &err);
    if (!st) st = avemo_classify_ctx_new(clf, &ctx, &err);
    if (!st) printf("model %s\n", model);
    for (int i = 1; !st && i < argc; i++) {
        struct avemo_prediction p;
        st = avemo_classify_file(ctx, argv[i], AVEMO_MODE_AV, &p, &err);
        if (!st) printf("answer %s %s %.2f\n", p.model, p.labels[p.label], p.confidence);
    }
    if (st) fprintf(stderr, "%s\n", err.message);
    avemo_classify_ctx_free(ctx);
    avemo_classifier_close(clf);
    return st ? 1 : 0;
}
C

# The models it used are the installed ones, the clip is answered by the av model and the wav
# by the audio model beside it.
check() {
    echo "$1"
    echo "$1" | grep -q "^model $prefix/[a-z]*/avemo/models/avemo-av.avm\$"
    echo "$1" | grep -Eq '^answer avemo-av (ANG|DIS|FEA|HAP|NEU|SAD) [01][.][0-9][0-9]$'
    echo "$1" | grep -Eq '^answer avemo-audio (ANG|DIS|FEA|HAP|NEU|SAD) [01][.][0-9][0-9]$'
}

cc "$prefix/app.c" -o "$prefix/app-pc" $(pkg-config --cflags --libs avemo) -Wl,-rpath,"$libdir"
check "$("$prefix/app-pc" "$clip" "$wav")"

mkdir "$prefix/cmake-app"
cat > "$prefix/cmake-app/CMakeLists.txt" <<'CMAKE'
cmake_minimum_required(VERSION 3.18)
project(avemo_user C)
find_package(avemo 0.1 REQUIRED)
add_executable(app ../app.c)
target_link_libraries(app PRIVATE avemo::avemo)
CMAKE
cmake -S "$prefix/cmake-app" -B "$prefix/cmake-build" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$prefix/cmake-build" >/dev/null
check "$("$prefix/cmake-build/app" "$clip" "$wav")"

"$prefix/bin/avemo" classify "$wav"
echo "installed; built with pkg-config and with find_package(avemo); both classified: ok"
