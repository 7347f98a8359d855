/* dmsnet — one error space for the whole library.
 *
 * Every fallible function returns an int: 0 (DN_OK) or a positive count on
 * success, a negative code on failure. Codes in (-DN_EBASE, 0) are negated
 * errno values from the OS boundary; codes at or below -DN_EBASE are ours. */
#ifndef DMSNET_ERROR_H
#define DMSNET_ERROR_H

#ifdef __cplusplus
extern "C" {
#endif

#define DN_EBASE 1000

enum dn_error {
    DN_OK = 0,
    DN_ENOMEM = -(DN_EBASE + 1),      /* allocation failed */
    DN_EINVAL = -(DN_EBASE + 2),      /* invalid argument from the caller */
    DN_EMALFORMED = -(DN_EBASE + 3),  /* input bytes do not follow the format */
    DN_ETRUNCATED = -(DN_EBASE + 4),  /* input ends before the value does */
    DN_ETOOBIG = -(DN_EBASE + 5),     /* a length or count exceeds its limit */
    DN_EUNSUPPORTED = -(DN_EBASE + 6),/* valid, but not supported by dmsnet */
    DN_ECRYPTO = -(DN_EBASE + 7),     /* a crypto library call failed */
    DN_EBADSIG = -(DN_EBASE + 8),     /* signature verification failed */
    DN_EPEERID = -(DN_EBASE + 9),     /* remote peer id is not the expected one */
    DN_EPROTO = -(DN_EBASE + 10),     /* peer violated the protocol */
    DN_ENEGOTIATE = -(DN_EBASE + 11), /* no common protocol ("na") */
    DN_ETIMEOUT = -(DN_EBASE + 12),   /* deadline passed */
    DN_ECLOSED = -(DN_EBASE + 13),    /* object or connection already closed */
    DN_ERESET = -(DN_EBASE + 14),     /* stream reset by the peer */
    DN_ELIMIT = -(DN_EBASE + 15),     /* a resource limit was reached */
    DN_EAGAIN = -(DN_EBASE + 16),     /* try again later (window, backlog) */
    DN_ENOTFOUND = -(DN_EBASE + 17),  /* no such item */
    DN_EEXIST = -(DN_EBASE + 18),     /* item already exists */
    DN_EIO = -(DN_EBASE + 19),        /* file or socket I/O failed */
    DN_EDECRYPT = -(DN_EBASE + 20),   /* authentication tag did not verify */
    DN_ESTATE = -(DN_EBASE + 21),     /* call not valid in the current state */
    DN_ECORRUPT = -(DN_EBASE + 22),   /* a stored file is damaged (left untouched) */
    DN_ESCHEMA = -(DN_EBASE + 23),    /* a stored file is from a newer dmsnet (left untouched) */
    DN_EREADONLY = -(DN_EBASE + 24),  /* a file that must be written is read-only */
};

/* Human-readable text for any code returned by dmsnet (ours or -errno).
 * Never returns NULL. */
const char *dn_strerror(int code);

#ifdef __cplusplus
}
#endif
#endif
