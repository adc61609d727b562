#!/bin/sh
# Thin launcher: ./lbserver and ./lbclient run the compiled CLI of the same name. Symbolic links
# to them (e.g. from a directory on PATH) are followed to the checkout, one link at a time (no
# readlink -f, which not every system has).
self=$0
while [ -L "$self" ]; do
  link=$(readlink "$self")
  case $link in
    /*) self=$link ;;
    *) self=$(dirname "$self")/$link ;;
  esac
done
here=$(cd "$(dirname "$self")" && pwd)
exec node "$here/dist/bin/$(basename "$self").js" "$@"
