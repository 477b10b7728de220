/* Image datasets on disk → a clpdd_dataset. Image folders and manifests are read ON DEMAND: the
 * load lists (and stats) the files, decodes the first one for the image size, and keeps only the
 * list and the labels; clpdd_dataset_read_float / to_float / gather_float decode and preprocess
 * the files asked for (on the worker pool for more than a few), so ImageNet-1K at 256 px (~250 GB
 * of pixels) costs its file list in memory. CIFAR is small and held in memory (uint8 (n, c, H, W)).
 *
 * Kinds (clpdd_data_cfg.kind):
 *   imagefolder  torchvision's ImageFolder: root/<split>/<class>/[sub/folders/]<file>. Classes are the
 *                sub-folders of root/<split> sorted by name (strcmp, as Python's sorted()), or the
 *                lines of classes_file (label i = line i; blank lines and '#' lines skipped; this
 *                also selects a subset, e.g. ImageNet-100). Files: torchvision's order (os.walk
 *                sorted: folder path, then file name, strcmp) with an extension in torchvision's
 *                IMG_EXTENSIONS (.jpg .jpeg .png .ppm .bmp .pgm .tif .tiff .webp, any case); other
 *                files are ignored, as torchvision ignores them (counted in info.ignored). Only JPEG
 *                and PNG content decodes; anything else is a bad image (see on_bad_image).
 *   manifest     root is a CSV file of `path,label[,split]` rows. A header row is recognised by a
 *                field named path / file / filename / img_filename / image (any case); its columns
 *                are then found by name: path (those names), label (label / y / target / class),
 *                split (split) — so Waterbirds' metadata.csv works as it is (split = 0/1/2).
 *                Without a header the columns are path, label, split in that order. Fields may be
 *                "quoted" ("" escapes a quote); spaces and tabs around a field are not part of
 *                it. Relative paths resolve against the CSV's folder.
 *                Labels are all integers or all class names (a mix, e.g. one `1.5` among
 *                integers, is an error naming both lines). Integers are the label (classes =
 *                the classes_file's line count when given, else 1 + the largest label over the
 *                WHOLE file, so every split agrees); class names are numbered by classes_file
 *                when given, else in order of first appearance in the whole CSV (all splits, so
 *                train and test agree).
 *                Splits: with cfg.split set the file needs a split column (else every row would
 *                be in both splits: an error); a row is kept when its split equals cfg.split; a
 *                split that differs from a used one (cfg.splits, else cfg.split) only in case is
 *                an error naming the line; rows of a split the caller does not use are left
 *                out and counted (info->other_rows, the first named). With cfg.split NULL every
 *                row is kept.
 *                Errors naming the CSV line(s): a NUL byte, an empty or implausibly large
 *                label, the same path on two rows (two labels, or two splits).
 *   cifar10, cifar100  the binary versions (core/io/cifar.h); split train or test.
 *
 * Preprocessing: resize > 0 → torchvision Resize(resize) (shorter side, Pillow bilinear with
 * antialias); crop > 0 → CenterCrop(crop); see imgproc.h. With neither, the images are used at
 * their stored size, which must then agree: the first file's (preprocessed) size is the
 * dataset's, and a file of another size is an error when it is read, naming both files and the
 * keys to set ([data] resize / crop).
 *
 * Decoding runs on a pool of `workers` threads (0 = the number of cores); the output order is
 * the requested order whatever the number of workers.
 *
 * Bad input: an unreadable / truncated / non-JPEG-or-PNG file in the listing, a missing manifest
 * file, a manifest label out of range or unknown. skip_bad = 0 (on_bad_image = error): a missing
 * manifest file or bad label is an error at load; a bad image is the error of the read that
 * meets it (the feature extraction reads every image first, so a run stops there), naming the
 * file (and CSV line) — the first image is decoded at load, so a folder of non-images fails at
 * once. skip_bad = 1: the load decodes every listed image once (a pass over the files that keeps
 * nothing but their fate and size, so the dataset's indices never change afterwards); the bad
 * ones are left out, counted in info->skipped, the first CLPDD_DATA_REPORT_FIRST named in
 * info->skipped_first with their messages, and a size mismatch is reported at load. Structural
 * problems are errors in both modes: an empty class folder, a class of classes_file not on
 * disk, an unparsable CSV row, no images at all.
 * Train and test with different class sets: clpdd_data_same_classes (the caller checks the pair).
 *
 * Dataset id (the feature cache's key): FNV-1a over kind, split, the class list, each listed file's
 * path relative to the root, its label and its identity, and the preprocessing (resize, crop,
 * grey, dct_scaling), limit, subset_seed and skip_bad. A file's identity ([data] verify):
 *   stat     (default) what git's index trusts: size, mtime, ctime (ns) and inode (not the
 *            device, which differs between the nodes of a cluster mounting one dataset). A file
 *            rewritten with the same size and its mtime put back (`touch -r`, utimensat) still
 *            gets a new ctime, which no user call can set back; a restored backup or a copy gets
 *            a new inode. Either way the features are extracted again. Costs one stat per file.
 *   content  the XXH3-64 of every file's bytes (a full read of the dataset at every load, cheap
 *            next to the extraction for small sets): nothing about the file but its bytes, so a
 *            copied or moved tree keeps its cache and any change of a byte is seen.
 * CIFAR: the batches' bytes themselves (XXH3 of the decoded records; they are read whole anyway). */
#ifndef CLPDD_DATA_SOURCE_H
#define CLPDD_DATA_SOURCE_H
#include <stdint.h>
#include "data/dataset.h"
#include "util/util.h"

#define CLPDD_DATA_REPORT_FIRST 5

/* [data] dataset: the IDX pair (clpdd_dataset_load_idx) and the image datasets read here */
typedef enum {
    CLPDD_DATASET_FASHION_MNIST = 0,
    CLPDD_DATASET_MNIST,
    CLPDD_DATASET_IMAGEFOLDER,
    CLPDD_DATASET_MANIFEST,
    CLPDD_DATASET_CIFAR10,
    CLPDD_DATASET_CIFAR100,
    CLPDD_DATASET_COUNT
} clpdd_dataset_kind;
/* the names, in the enum's order: the key's choices, descriptions and the dataset id's hash */
extern const char *const clpdd_dataset_names[CLPDD_DATASET_COUNT];
const char *clpdd_dataset_kind_name(clpdd_dataset_kind k); /* "?" out of range */

typedef struct clpdd_data_cfg {
    clpdd_dataset_kind kind;  /* imagefolder, manifest, cifar10 or cifar100 */
    const char *root;         /* imagefolder / cifar: a folder; manifest: the CSV file */
    const char *classes_file; /* optional (NULL): one class name per line */
    const char *split;        /* imagefolder: the sub-folder ("train", "val"); manifest: the split
                                 column's value (NULL: every row); cifar: "train" | "test" */
    int resize;               /* shorter side to this (0: none) */
    int crop;                 /* centre crop to crop × crop (0: none) */
    int workers;              /* decoder threads, 0 = cores */
    int skip_bad;             /* on_bad_image: 0 = error, 1 = skip */
    int grey;                 /* 1: one channel (PIL convert("L")), 0: RGB */
    int dct_scaling;          /* 1: JPEG DCT scaling to a shorter side ≥ resize (only with resize > 0);
                                 faster for large files, changes pixels vs PIL (results/data/README.md) */
    long limit;               /* > 0: class-stratified random subset of this size (seeded) */
    uint64_t subset_seed;
    int verify;               /* a file's identity in the dataset id: clpdd_data_verify ([data] verify) */
    const char *const *splits; /* manifest: every split value the caller uses, NULL-terminated (e.g. the
                                  train and test splits); rows in none of them are counted in
                                  info->other_rows. NULL: only `split` is known */
    const char *group;        /* [data] group (NULL or "": none): manifest: a column's name (Waterbirds'
                                 `place`); imagefolder: `path:K`, the K-th folder of the path below the
                                 split folder (0 = the class folder, 1 the one inside it, ...) */
} clpdd_data_cfg;

/* [data] verify: how a listed file's identity enters the dataset id (see above) */
typedef enum { CLPDD_VERIFY_STAT = 0, CLPDD_VERIFY_CONTENT, CLPDD_VERIFY_COUNT } clpdd_data_verify;
extern const char *const clpdd_data_verify_names[CLPDD_VERIFY_COUNT];

/* one listed image */
typedef struct clpdd_data_item {
    char *path;       /* as opened */
    const char *rel;  /* path relative to the root (into path) */
    int32_t label;
    int line;         /* manifest: the CSV line (1-based); 0 otherwise */
    char *group;      /* [data] group: the item's group value (NULL without one) */
    int64_t size, mtime_ns, ctime_ns;
    uint64_t ino;
} clpdd_data_item;

typedef struct clpdd_data_list {
    int n, classes;
    clpdd_data_item *items; /* (n) */
    char **class_names;     /* (classes) */
    char where[4200];       /* "root/train" or "file.csv" for messages */
    long ignored;           /* imagefolder: files without an image extension */
    long skipped;           /* manifest rows left out with skip_bad (missing file, bad label) */
    char *skipped_first[CLPDD_DATA_REPORT_FIRST];
    long other_rows;        /* manifest rows of a split value the caller does not use */
    char *other_first;      /* "file.csv:line: split 'x'" of the first of them */
} clpdd_data_list;

/* what a load did besides the pixels: the class names and what was skipped */
typedef struct clpdd_data_info {
    int classes;
    char **class_names;    /* (classes) */
    long listed;           /* images listed before subset / skipping */
    long skipped, ignored; /* bad images left out (skip_bad), non-image files ignored */
    char *skipped_first[CLPDD_DATA_REPORT_FIRST]; /* "path: message" of the first skipped */
    long other_rows;   /* manifest: rows whose split is none of cfg.splits (or not cfg.split) */
    char *other_first; /* "file.csv:line: split 'x'" of the first of them */
    int n_group_values;    /* [data] group: the distinct values of this split (0 without a group) */
    char **group_values;   /* (n_group_values) sorted by strcmp; ds->groups index them */
} clpdd_data_info;

int clpdd_data_list_imagefolder(clpdd_data_list *l, const char *root, const char *split, const char *classes_file,
                                clpdd_err *e);
int clpdd_data_list_manifest(clpdd_data_list *l, const char *csv, const char *split, const char *const *splits,
                             const char *classes_file, int skip_bad, clpdd_err *e);
/* [data] group on a listing: every item's group value, from the manifest column named `rule`
   (re-read from the CSV: a missing column, or an empty value, is an error naming file and line)
   or, for an image folder, `path:K` (the K-th folder of the item's path below the split folder;
   an item with fewer folders is an error naming it) */
int clpdd_data_list_groups(clpdd_data_list *l, clpdd_dataset_kind kind, const char *csv, const char *rule, clpdd_err *e);
void clpdd_data_list_free(clpdd_data_list *l);

/* list and subset one split (image folder / manifest: read on demand afterwards; CIFAR: decoded
   into memory); info may be NULL */
int clpdd_dataset_load_source(clpdd_dataset *ds, clpdd_data_info *info, const clpdd_data_cfg *cfg, clpdd_err *e);
void clpdd_data_info_free(clpdd_data_info *info);

/* 0 when a and b list the same classes in the same order; else -1 with a message naming the
   first difference and both sources (a_what, b_what, e.g. "train split" / "val split") */
int clpdd_data_same_classes(const clpdd_data_info *a, const char *a_what, const clpdd_data_info *b,
                            const char *b_what, clpdd_err *e);

#endif
