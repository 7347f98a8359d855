#!/usr/bin/env bash
# Layers depend only downward (shared DESIGN.md, "Structure we aim for"):
# each src/<module> may include its own headers, the public headers
# (dmsnet/...) and the internal headers of the modules listed for it here.
# The host knows no service above it; services use the host's public API.
# Also: libdmsnet.so exports the public API (dn_) and no internals (dn__).
set -u
src=${DN_SOURCE_DIR:?}/src
declare -A allowed=(
  [core]=""
  [multiformats]="core"
  [crypto]="core multiformats"
  [pnet]="core multiformats crypto"
  [mss]="core"
  [noise]="core multiformats crypto"
  [yamux]="core"
  [host]="core multiformats crypto pnet mss noise yamux"
  [proto]="core multiformats crypto"
  [pubsub]="core multiformats crypto proto"
  [store]="core"
  [api]="core"
  [node]="core multiformats store api"
  [messenger]="core"
  [kad]="core multiformats crypto"
  [cli]="*"
)
fail=0
for dir in "$src"/*/; do
  mod=$(basename "$dir")
  if [ -z "${allowed[$mod]+x}" ]; then
    echo "FAIL: src/$mod has no entry in the layer table of $0 (say what it may include)"
    fail=1
    continue
  fi
  ok=" $mod ${allowed[$mod]} "
  [ "${allowed[$mod]}" = "*" ] && continue
  while IFS= read -r line; do
    file=${line%%:*}
    inc=$(sed -E 's/.*#include "([^"/]+)\/.*/\1/' <<<"${line#*:}")
    [ "$inc" = dmsnet ] && continue
    case "$ok" in
      *" $inc "*) ;;
      *) echo "FAIL: ${file#"$src"/} includes $inc/ (src/$mod may use: ${allowed[$mod]:-nothing})"; fail=1 ;;
    esac
  done < <(grep -HE '^#include "[^"/]+/' "$dir"*.[ch] 2>/dev/null)
done
if grep -lE '#include "(core|host|proto|crypto|noise|yamux|mss|pnet|multiformats|store)/' \
    "${DN_SOURCE_DIR}"/include/dmsnet/*.h; then
  echo "FAIL: public headers include internal ones"; fail=1
fi
lib=${DN_BUILD_DIR:?}/libdmsnet.so
if [ -f "$lib" ]; then
  internal=$(nm -D --defined-only "$lib" | awk '{print $3}' | grep -v '^dn_[^_]' | head -n 5)
  if [ -n "$internal" ]; then
    echo "FAIL: libdmsnet.so exports symbols outside the public API: $internal"; fail=1
  fi
  npub=$(nm -D --defined-only "$lib" | awk '{print $3}' | grep -c '^dn_[^_]')
  [ "$npub" -gt 50 ] || { echo "FAIL: only $npub public symbols exported"; fail=1; }
else
  echo "FAIL: $lib not built"; fail=1
fi
[ $fail = 0 ] && echo PASS
exit $fail
