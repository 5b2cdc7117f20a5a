#!/bin/sh
# Install avemo into a temporary prefix, then build and run a small C program against it
# with pkg-config, as a user of the library would.
set -eu
build_dir=$1
clip=$2
prefix=$(mktemp -d /tmp/avemo_install_XXXXXX)
trap 'rm -rf "$prefix"' EXIT
cmake --install "$build_dir" --prefix "$prefix" >/dev/null
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig:$prefix/lib/$(gcc -print-multiarch 2>/dev/null || true)/pkgconfig"
cat > "$prefix/app.c" <<'C'
#include <avemo/avemo.h>
#include <stdio.h>
int main(int argc, char **argv)
{
    struct avemo_error err = {0};
    avemo_media *m;
    struct avemo_audio a;
    if (argc < 2 || avemo_media_open_file(argv[1], NULL, &m, &err) || avemo_media_decode_audio(m, 16000, &a, &err)) {
        fprintf(stderr, "%s\n", err.message);
        return 1;
    }
    printf("avemo %s %zu\n", avemo_version(), a.count);
    avemo_audio_free(&a);
    avemo_media_close(m);
    return 0;
}
C
cc "$prefix/app.c" -o "$prefix/app" $(pkg-config --cflags --libs avemo) -Wl,-rpath,"$prefix/lib"
"$prefix/app" "$clip" | grep -q "^avemo "
echo "installed, built with pkg-config and ran: ok"
