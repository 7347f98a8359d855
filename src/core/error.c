#include "dmsnet/error.h"

#include <string.h>

const char *dn_strerror(int code)
{
    if (code >= 0)
        return "success";
    if (code > -DN_EBASE)
        return strerror(-code);
    switch (code) {
    case DN_ENOMEM: return "out of memory";
    case DN_EINVAL: return "invalid argument";
    case DN_EMALFORMED: return "malformed input";
    case DN_ETRUNCATED: return "truncated input";
    case DN_ETOOBIG: return "size exceeds limit";
    case DN_EUNSUPPORTED: return "not supported";
    case DN_ECRYPTO: return "crypto operation failed";
    case DN_EBADSIG: return "signature verification failed";
    case DN_EPEERID: return "peer id mismatch";
    case DN_EPROTO: return "protocol violation";
    case DN_ENEGOTIATE: return "protocol not supported by peer";
    case DN_ETIMEOUT: return "timed out";
    case DN_ECLOSED: return "closed";
    case DN_ERESET: return "stream reset";
    case DN_ELIMIT: return "resource limit reached";
    case DN_EAGAIN: return "resource temporarily unavailable";
    case DN_ENOTFOUND: return "not found";
    case DN_EEXIST: return "already exists";
    case DN_EIO: return "I/O error";
    case DN_EDECRYPT: return "decryption failed (bad key or tampered data)";
    case DN_ESTATE: return "invalid state for this call";
    case DN_ECORRUPT: return "stored data is corrupt";
    case DN_ESCHEMA: return "stored data is from a newer version";
    case DN_EREADONLY: return "file or directory is read-only";
    default: return "unknown error";
    }
}
