/* Temporary files of key writers (identity keys, swarm keys).
 *
 * A key is written to "<path>.tmp.XXXXXX" beside its target and renamed over
 * it, so no reader sees half a key. A writer killed before the rename leaves
 * that file behind, holding a whole private key; these helpers let the next
 * writer, or the daemon at start, find and remove such leftovers without
 * touching the file of a writer that is still alive. */
#ifndef DN_CRYPTO_KEYFILE_H
#define DN_CRYPTO_KEYFILE_H

/* Create "<path>.tmp.XXXXXX" (mode 0600, O_CLOEXEC) and hold an exclusive
 * flock(2) on it for as long as the descriptor is open: the lock is what
 * tells a live writer's file from a dead one's. On success returns the fd
 * and sets *tmp (malloc'd, the caller frees); else a negative code. */
int dn__keyfile_tmp_open(const char *path, char **tmp);

/* Remove stale temporaries of path: names "<basename>.tmp.XXXXXX" (six
 * characters of mkstemp's alphabet) in path's directory that are regular
 * files owned by us and not locked by a writer. Returns how many were removed
 * (each is logged), or a negative code when the directory cannot be read
 * (-ENOENT when it does not exist yet: nothing to clean). */
int dn__keyfile_remove_stale(const char *path);

#endif
