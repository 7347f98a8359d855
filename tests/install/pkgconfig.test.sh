#!/usr/bin/env bash
# `make install` works: install the build into a scratch prefix, then build
# and run a program against it through pkg-config (shared and static).
set -eu
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cmake --install "$DN_BUILD_DIR" --prefix "$work/prefix" >/dev/null
for h in error buf encoding keys peerid multiaddr host protocols log; do
    [ -f "$work/prefix/include/dmsnet/$h.h" ] || { echo "FAIL: header $h.h not installed"; exit 1; }
done
cat >"$work/use.c" <<'C'
#include <dmsnet/error.h>
#include <dmsnet/host.h>
#include <stdio.h>
int main(void)
{
    dn_privkey *k;
    if (dn_privkey_generate(DN_KEY_ED25519, &k))
        return 1;
    dn_peerid id;
    char s[DN_PEERID_STR_MAX];
    if (dn_peerid_from_pubkey(dn_privkey_public(k), &id) || dn_peerid_to_string(&id, s, sizeof s) < 0)
        return 1;
    printf("%s\n", s);
    dn_privkey_free(k);
    return 0;
}
C
export PKG_CONFIG_PATH=$work/prefix/lib/pkgconfig
CC=${DN_CC:-cc}
read -r -a flags <<<"${DN_CC_FLAGS:-}"
cc() { "$CC" "${flags[@]}" "$@"; }
cc "$work/use.c" $(pkg-config --cflags --libs dmsnet) -Wl,-rpath,"$work/prefix/lib" -o "$work/use-shared"
cc "$work/use.c" $(pkg-config --cflags dmsnet) "$work/prefix/lib/libdmsnet.a" \
    $(pkg-config --libs-only-l --static dmsnet | sed 's/-ldmsnet//') -o "$work/use-static"
for bin in use-shared use-static; do
    out=$("$work/$bin")
    case "$out" in 12D3KooW*) ;; *) echo "FAIL: $bin printed '$out'"; exit 1 ;; esac
done
echo PASS
