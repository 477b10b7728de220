/* A data file's identity by content: the XXH3-64 hash of its bytes, computed once and remembered.
 *
 * A name, size and mtime identify a file badly: a file rewritten in place with the same size and
 * its mtime put back (`touch -r`) looks unchanged, and a cache keyed on it serves stale features.
 * The content hash cannot be fooled that way; hashing is fast (XXH3, several GB/s) but still a
 * full read, so the result is remembered in <cache_dir>/file-ids/<hash of the path>.txt under the
 * file's (real path, size, mtime-ns, ctime-ns, device, inode). ctime is in the key because it is
 * the one stamp `touch -r` cannot restore: any write or touch moves it, so an in-place rewrite
 * misses the index and is hashed afresh. Entries are written atomically; an unreadable or
 * unwritable index (a shared cache directory owned by someone else, a read-only disk) only
 * means the file is hashed again, never an error. */
#ifndef CLPDD_FILE_ID_H
#define CLPDD_FILE_ID_H
#include <stdint.h>

#include "util/util.h"

/* *out = XXH3-64 of path's bytes. cache_dir may be NULL (then nothing is remembered).
   -1 + a message naming the file when it cannot be read. */
int clpdd_file_content_hash(const char *path, const char *cache_dir, uint64_t *out, clpdd_err *e);

/* XXH3-64 of a buffer (the checksum of cache and checkpoint payloads) */
uint64_t clpdd_xxh3(const void *data, size_t len);

#endif
