/* Frozen-encoder features of a dataset, computed once and cached.
 *
 * The cache key hashes everything that determines the features: the backbone plugin (name,
 * version, every resolved key of its section but the inference `batch`), the weights file's bytes
 * (XXH3, remembered by file_id.h), the adapter (input size, mean/std), the dataset (ds->id: IDX
 * and CIFAR by their bytes, image folders and manifests by their file list with each file's
 * identity as [data] verify says — data/data_source.h —, the split and the subset), the
 * arithmetic of the ops that computed them (the device; on the CPU the BLAS build, the library of
 * gemm's small products — libxsmm or OpenBLAS, $CLPDD_SMALL_GEMM — and $CLPDD_CONV_ALGO: each
 * rounds differently), the stored dtype and the shard size.
 *
 * Layout (sharded, so a split of ImageNet-1K is written as it is extracted and a killed
 * extraction resumes at the first missing shard): <cache_dir>/<hash>-<s>.safetensors, one per
 * `shard_images` images (the last one shorter), s = 00000, 00001, ...; each with tensors
 * "features" (rows, d) F32 or F16 and "labels" (rows) I32 and as metadata its key (the key's
 * description + its row range) and an XXH3 checksum of its payload; written atomically, so never
 * half-written. <cache_dir>/<hash>.index, written last (once every shard is there), lists the
 * shards and their checksums. A shard's content depends only on its rows (extraction restarts
 * its batches at every shard), so shards written by separate processes (clpdd features --shard
 * i/N) and joined (--merge) give the same bytes as one extraction.
 * On load nothing is trusted (clpdd_features_read_shard, memory-mapped, read-only): a corrupt,
 * foreign or unreadable shard is reported as a warning and that shard is extracted again. A cache
 * written before the arithmetic was in the key is simply not found (another hash). F16: features are rounded to half
 * precision before use whether extracted now or read back, so both paths give the same numbers. */
#ifndef CLPDD_FEATURE_CACHE_H
#define CLPDD_FEATURE_CACHE_H
#include "encoder/adapter.h"
#include "encoder/backbone.h"
#include "io/ini.h"
#include "data/dataset.h"
#include "features/cache_file.h"

/* the cache directory: explicit, else $CLPDD_CACHE_DIR, $XDG_CACHE_HOME/clpdd, ~/.cache/clpdd
   (HOME unset: $TMPDIR or /tmp, clpdd-cache-<uid>); what does not exist yet is created mode 0700 */
void clpdd_cache_dir(const char *configured, char *out, size_t n);
/* 0 when dir may be trusted, as ssh and tmux judge theirs: owned by this user (or root) and not
   writable by group or others, or not there (nothing to read); else -1 + a message naming the
   directory, its owner and mode and what to do. The cache's checksums are not keyed: features
   planted by another user would pass them. Every use of a cache directory checks it first. */
int clpdd_cache_dir_trusted(const char *dir, clpdd_err *e);

/* features of every image of ds through adapter + backbone, in batches of `batch`
   (uses the cache when cache_dir is non-NULL) */
int clpdd_features_get(clpdd_features *f, clpdd_backbone *bb, const clpdd_dataset *ds, const char *split,
                       const char *cache_dir, int batch, int verbose, clpdd_err *e);
void clpdd_features_free(clpdd_features *f);

#define CLPDD_CACHE_SHARD_IMAGES 50000
typedef struct clpdd_features_opt {
    int batch;        /* inference batch (≤ 0: 256) */
    int verbose;
    int shard_images; /* images per cache shard; 0: $CLPDD_CACHE_SHARD_IMAGES, else CLPDD_CACHE_SHARD_IMAGES */
    int f16;          /* [data] feature_dtype = f16: stored (and used) in half precision */
    int part, parts;  /* parts > 0: only the shards of part `part` (0..parts-1, contiguous ranges) are
                         read or extracted and written; f gets no features (clpdd features --shard) */
} clpdd_features_opt;

/* clpdd_features_get with the options above (cache_dir non-NULL for parts > 0) */
int clpdd_features_get_opt(clpdd_features *f, clpdd_backbone *bb, const clpdd_dataset *ds, const char *split,
                           const char *cache_dir, const clpdd_features_opt *o, clpdd_err *e);
/* the sharded cache of ds complete? every shard read and verified (nothing extracted), then the
   index written: 0; -1 naming the missing or bad shards (clpdd features --merge) */
int clpdd_features_merge(clpdd_backbone *bb, const clpdd_dataset *ds, const char *split, const char *cache_dir,
                         const clpdd_features_opt *o, clpdd_err *e);

#endif
