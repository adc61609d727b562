#!/bin/sh
# Thin launcher: ./lbserver and ./lbclient run the compiled CLI of the same name.
here=$(cd "$(dirname "$0")" && pwd)
exec node "$here/dist/bin/$(basename "$0").js" "$@"
