#!/bin/sh
# Install avemo into a temporary prefix: the man page is where man finds it (man avemo with
# MANPATH=PREFIX/share/man renders it) and bash-completion's folder holds the completion, which
# completes the installed program's commands.
set -eu
build_dir=$1
prefix=$(mktemp -d /tmp/avemo_docs_XXXXXX)
trap 'rm -rf "$prefix"' EXIT
cmake --install "$build_dir" --prefix "$prefix" >/dev/null
page="$prefix/share/man/man1/avemo.1"
completion="$prefix/share/bash-completion/completions/avemo"
test -f "$page" || { echo "FAIL: no $page"; exit 1; }
test -f "$completion" || { echo "FAIL: no $completion"; exit 1; }
if command -v man >/dev/null 2>&1; then
  MANPATH="$prefix/share/man" MANWIDTH=80 man avemo 2>&1 | grep -q 'avemo classify' ||
    { echo "FAIL: man avemo does not render the page"; exit 1; }
else
  groff -man -Tutf8 "$page" | grep -q 'avemo classify' || { echo "FAIL: groff does not render $page"; exit 1; }
fi
got=$(bash --norc -c 'source "$1"; COMP_WORDS=("$2" cla); COMP_CWORD=1; _avemo; echo "${COMPREPLY[*]}"' \
      bash "$completion" "$prefix/bin/avemo")
test "$got" = classify || { echo "FAIL: the installed completion offers '$got' for 'avemo cla'"; exit 1; }
echo "man page and bash completion installed and working: ok"
