/* Image folders, CSV manifests and CIFAR binaries → clpdd_dataset; see data_source.h.
 * Dimension legend: n images, c channels (3 RGB or 1 grey), H, W the preprocessed size. */
#define _GNU_SOURCE
#include "data/data_source.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "data/decode_pool.h"
#include "data/file_id.h"
#include "data/imgproc.h"
#include "io/cifar.h"
#include "io/ini.h"
#include "io/image.h"

const char *const clpdd_dataset_names[CLPDD_DATASET_COUNT] = {"fashion-mnist", "mnist",   "imagefolder",
                                                               "manifest",      "cifar10", "cifar100"};

const char *const clpdd_data_verify_names[CLPDD_VERIFY_COUNT] = {"stat", "content"};

const char *clpdd_dataset_kind_name(clpdd_dataset_kind k) {
    return clpdd_name_at(clpdd_dataset_names, CLPDD_DATASET_COUNT, (int)k);
}

/* ---------------------------------------------------------------- small helpers */

typedef struct strvec {
    char **s;
    int n, cap;
} strvec;

static void sv_push(strvec *v, char *s) {
    if (v->n == v->cap) {
        v->cap = v->cap ? 2 * v->cap : 16;
        v->s = realloc(v->s, (size_t)v->cap * sizeof *v->s);
        CLPDD_ASSERT(v->s);
    }
    v->s[v->n++] = s;
}

static void sv_free(strvec *v) {
    for (int i = 0; i < v->n; i++) free(v->s[i]);
    free(v->s);
    memset(v, 0, sizeof *v);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int64_t ts_ns(struct timespec t) { return (int64_t)t.tv_sec * 1000000000LL + t.tv_nsec; }

static void push_item(clpdd_data_list *l, int *cap, char *path, size_t rel_off, int32_t label, int line,
                      const struct stat *st) {
    if (l->n == *cap) {
        *cap = *cap ? 2 * *cap : 256;
        l->items = realloc(l->items, (size_t)*cap * sizeof *l->items);
        CLPDD_ASSERT(l->items);
    }
    clpdd_data_item *it = &l->items[l->n++];
    it->path = path;
    it->rel = path + rel_off;
    it->label = label;
    it->line = line;
    it->group = NULL;
    it->size = st ? (int64_t)st->st_size : 0;
    it->mtime_ns = st ? ts_ns(st->st_mtim) : 0;
    it->ctime_ns = st ? ts_ns(st->st_ctim) : 0;
    it->ino = st ? (uint64_t)st->st_ino : 0;
}

static void note_skip(clpdd_data_list *l, const char *fmt, const char *a, int line, const char *msg) {
    if (l->skipped < CLPDD_DATA_REPORT_FIRST) {
        char buf[1200];
        snprintf(buf, sizeof buf, fmt, a, line, msg);
        l->skipped_first[l->skipped] = clpdd_xstrdup(buf);
    }
    l->skipped++;
}

void clpdd_data_list_free(clpdd_data_list *l) {
    for (int i = 0; i < l->n; i++) free(l->items[i].path), free(l->items[i].group);
    free(l->items);
    for (int i = 0; i < l->classes; i++) free(l->class_names[i]);
    free(l->class_names);
    for (int i = 0; i < CLPDD_DATA_REPORT_FIRST; i++) free(l->skipped_first[i]);
    free(l->other_first);
    memset(l, 0, sizeof *l);
}

/* the lines of a classes file (blank and '#' lines skipped, surrounding blanks trimmed) */
static int read_classes(const char *path, strvec *out, clpdd_err *e) {
    uint8_t *buf;
    size_t len;
    if (clpdd_read_file(path, &buf, &len, e)) return -1;
    char *save = NULL;
    for (char *ln = strtok_r((char *)buf, "\n", &save); ln; ln = strtok_r(NULL, "\n", &save)) {
        while (*ln && isspace((unsigned char)*ln)) ln++;
        size_t k = strlen(ln);
        while (k > 0 && isspace((unsigned char)ln[k - 1])) ln[--k] = 0;
        if (!*ln || *ln == '#') continue;
        for (int i = 0; i < out->n; i++)
            if (strcmp(out->s[i], ln) == 0) {
                free(buf);
                sv_free(out);
                return clpdd_err_set(e, "data: %s: class '%s' listed twice", path, ln);
            }
        sv_push(out, clpdd_xstrdup(ln));
    }
    free(buf);
    if (out->n == 0) return clpdd_err_set(e, "data: %s: no class names (expected one per line)", path);
    return 0;
}

/* ---------------------------------------------------------------- imagefolder */

static int has_image_ext(const char *name) {
    static const char *ext[] = {".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp"};
    size_t n = strlen(name);
    for (size_t i = 0; i < sizeof ext / sizeof *ext; i++) {
        size_t k = strlen(ext[i]);
        if (n >= k && strcasecmp(name + n - k, ext[i]) == 0) return 1;
    }
    return 0;
}

typedef struct found {
    char *dir, *name; /* dir relative to the class folder ("" for the folder itself) */
    struct stat st;
} found;

typedef struct foundvec {
    found *f;
    int n, cap;
} foundvec;

static int cmp_found(const void *a, const void *b) {
    const found *x = a, *y = b;
    int c = strcmp(x->dir, y->dir);
    return c ? c : strcmp(x->name, y->name);
}

/* the folders from the class folder down to the one being walked: (device, inode) of each, so a
   link back to one of them (a cycle) is seen when it is met */
#define WALK_MAX_DEPTH 32
typedef struct walk_path {
    dev_t dev[WALK_MAX_DEPTH + 1];
    ino_t ino[WALK_MAX_DEPTH + 1];
    char *name[WALK_MAX_DEPTH + 1];
    int n;
} walk_path;

/* a sub-folder full (st its stat) about to be entered: -1 with a message when it is one of the
   folders above it (a symbolic-link cycle: os.walk(followlinks=True) would loop) or too deep */
static int walk_enter(const walk_path *wp, const char *full, const struct stat *st, clpdd_err *e) {
    char shown[1024], above[1024];
    for (int i = 0; i < wp->n; i++)
        if (wp->dev[i] == st->st_dev && wp->ino[i] == st->st_ino)
            return clpdd_err_set(e,
                                 "data: %s: a link back to the folder %s above it (a directory cycle); the image "
                                 "folder walk follows links, so remove the link or point it outside its own tree",
                                 clpdd_escape(full, shown, sizeof shown), clpdd_escape(wp->name[i], above, sizeof above));
    if (wp->n > WALK_MAX_DEPTH)
        return clpdd_err_set(e, "data: %s: more than %d folders deep inside its class folder",
                             clpdd_escape(full, shown, sizeof shown), WALK_MAX_DEPTH);
    return 0;
}

/* every file under base/sub (recursive, following links like os.walk(followlinks=True));
   wp holds the folders above and including base/sub */
static int walk(const char *base, const char *sub, foundvec *fv, long *ignored, walk_path *wp, clpdd_err *e) {
    char path[4200];
    snprintf(path, sizeof path, "%s%s%s", base, *sub ? "/" : "", sub);
    DIR *d = opendir(path);
    if (!d) return clpdd_err_set(e, "data: %s: cannot open folder (%s)", path, strerror(errno));
    struct dirent *de;
    int rc = 0;
    while (rc == 0 && (de = readdir(d))) {
        if (de->d_name[0] == '.' && (!de->d_name[1] || (de->d_name[1] == '.' && !de->d_name[2]))) continue;
        char full[4500], rel[4500];
        snprintf(full, sizeof full, "%s/%s", path, de->d_name);
        snprintf(rel, sizeof rel, "%s%s%s", sub, *sub ? "/" : "", de->d_name);
        struct stat st;
        if (stat(full, &st) != 0) continue; /* a dangling link: os.walk skips it too */
        if (S_ISDIR(st.st_mode)) {
            rc = walk_enter(wp, full, &st, e);
            if (rc == 0) {
                wp->dev[wp->n] = st.st_dev, wp->ino[wp->n] = st.st_ino, wp->name[wp->n] = full;
                wp->n++;
                rc = walk(base, rel, fv, ignored, wp, e);
                wp->n--;
            }
        } else if (has_image_ext(de->d_name)) {
            if (fv->n == fv->cap) {
                fv->cap = fv->cap ? 2 * fv->cap : 64;
                fv->f = realloc(fv->f, (size_t)fv->cap * sizeof *fv->f);
                CLPDD_ASSERT(fv->f);
            }
            fv->f[fv->n++] = (found){clpdd_xstrdup(sub), clpdd_xstrdup(de->d_name), st};
        } else {
            (*ignored)++;
        }
    }
    closedir(d);
    return rc;
}

int clpdd_data_list_imagefolder(clpdd_data_list *l, const char *root, const char *split, const char *classes_file,
                                clpdd_err *e) {
    memset(l, 0, sizeof *l);
    char base[4096];
    if (split && *split) snprintf(base, sizeof base, "%s/%s", root, split);
    else snprintf(base, sizeof base, "%s", root);
    snprintf(l->where, sizeof l->where, "%s", base);
    struct stat st;
    if (stat(base, &st) != 0 || !S_ISDIR(st.st_mode))
        return clpdd_err_set(e, "data: %s: no such folder (imagefolder expects root/<split>/<class>/<image>; root = %s, "
                                "split = %s)",
                             base, root, split ? split : "(none)");
    strvec classes = {0};
    if (classes_file) {
        if (read_classes(classes_file, &classes, e)) return -1;
        for (int c = 0; c < classes.n; c++) {
            char p[4400];
            snprintf(p, sizeof p, "%s/%s", base, classes.s[c]);
            if (stat(p, &st) != 0 || !S_ISDIR(st.st_mode)) {
                clpdd_err_set(e, "data: class '%s' (line %d of %s) is not on disk: no folder %s", classes.s[c], c + 1,
                              classes_file, p);
                sv_free(&classes);
                return -1;
            }
        }
    } else {
        DIR *d = opendir(base);
        if (!d) return clpdd_err_set(e, "data: %s: cannot open folder (%s)", base, strerror(errno));
        struct dirent *de;
        while ((de = readdir(d))) {
            if (de->d_name[0] == '.') continue;
            char p[4400];
            snprintf(p, sizeof p, "%s/%s", base, de->d_name);
            if (stat(p, &st) == 0 && S_ISDIR(st.st_mode)) sv_push(&classes, clpdd_xstrdup(de->d_name));
        }
        closedir(d);
        if (classes.n == 0)
            return clpdd_err_set(e, "data: %s: no class folders (imagefolder expects %s/<class>/<image>)", base, base);
        qsort(classes.s, (size_t)classes.n, sizeof *classes.s, cmp_str);
    }
    int cap = 0, rc = 0;
    size_t rel_off = strlen(base) + 1;
    for (int c = 0; c < classes.n && rc == 0; c++) {
        char cdir[4400];
        snprintf(cdir, sizeof cdir, "%s/%s", base, classes.s[c]);
        foundvec fv = {0};
        long ign = 0;
        walk_path wp = {.n = 1, .name = {cdir}};
        if (stat(cdir, &st) == 0) wp.dev[0] = st.st_dev, wp.ino[0] = st.st_ino;
        rc = walk(cdir, "", &fv, &ign, &wp, e);
        l->ignored += ign;
        if (rc == 0 && fv.n == 0)
            rc = clpdd_err_set(e,
                               "data: class '%s' is empty: no image files in %s (extensions .jpg .jpeg .png .ppm .bmp "
                               ".pgm .tif .tiff .webp; %ld other file%s ignored)",
                               classes.s[c], cdir, ign, ign == 1 ? "" : "s");
        if (rc == 0) qsort(fv.f, (size_t)fv.n, sizeof *fv.f, cmp_found);
        for (int i = 0; i < fv.n; i++) {
            if (rc == 0) {
                char *p = NULL;
                if (asprintf(&p, "%s/%s%s%s", cdir, fv.f[i].dir, *fv.f[i].dir ? "/" : "", fv.f[i].name) < 0) abort();
                push_item(l, &cap, p, rel_off, c, 0, &fv.f[i].st);
            }
            free(fv.f[i].dir);
            free(fv.f[i].name);
        }
        free(fv.f);
    }
    l->classes = classes.n;
    l->class_names = classes.s;
    if (rc) clpdd_data_list_free(l);
    return rc;
}

/* ---------------------------------------------------------------- manifest */

static int is_blank(char c) { return c == ' ' || c == '\t'; }

/* split one CSV line into fields in place (RFC 4180 quotes); spaces and tabs around a field are
   not part of it ("a.png, 0, train" is a.png / 0 / train; inside quotes they are kept); returns
   the count */
static int csv_fields(char *s, char **f, int maxf) {
    int n = 0;
    char *w = s;
    for (;;) {
        if (n == maxf) return n + 1; /* too many: flagged by the caller */
        while (is_blank(*s)) s++;
        f[n++] = w;
        char *kept = w; /* the end of the quoted part, never trimmed */
        if (*s == '"') {
            s++;
            for (;;) {
                if (!*s) break;
                if (*s == '"' && s[1] == '"') *w++ = '"', s += 2;
                else if (*s == '"') {
                    s++;
                    break;
                } else *w++ = *s++;
            }
            kept = w;
            while (*s && *s != ',') *w++ = *s++;
        } else {
            while (*s && *s != ',') *w++ = *s++;
        }
        while (w > kept && is_blank(w[-1])) w--;
        if (*s == ',') {
            s++;
            *w = 0;
            w = s;
            continue;
        }
        *w = 0;
        return n;
    }
}

static int is_int(const char *s) {
    if (*s == '-') s++;
    if (!*s) return 0;
    for (; *s; s++)
        if (!isdigit((unsigned char)*s)) return 0;
    return 1;
}

static int name_in(const char *s, const char *const *names) {
    for (; *names; names++)
        if (strcasecmp(s, *names) == 0) return 1;
    return 0;
}

#define CSV_MAXF 64

/* the next line of CSV text split in place: the line's NUL-terminated text without its \r (and,
   on line 1, a UTF-8 byte order mark); *p moves past it, *line counts it; NULL at the end */
static char *csv_next_line(char **p, int *line) {
    if (!*p || !**p) return NULL;
    char *ln = *p, *nl = strchr(ln, '\n');
    if (nl) *nl = 0;
    *p = nl ? nl + 1 : NULL;
    (*line)++;
    size_t k = strlen(ln);
    if (k && ln[k - 1] == '\r') ln[--k] = 0;
    if (*line == 1 && (unsigned char)ln[0] == 0xef && (unsigned char)ln[1] == 0xbb && (unsigned char)ln[2] == 0xbf) ln += 3;
    return ln;
}

/* one row of a manifest: fields pointing into the file's buffer, and its line number */
typedef struct manifest_row {
    char *path, *label, *split;
    int line;
} manifest_row;

/* pass 1: the rows of the manifest text buf (split in place), with their line numbers; the
   columns from a header (a path and a label column by name, split optional) or by position
   (path,label[,split]). 0, or -1 with the rows read so far still in *rows */
static int manifest_rows(const char *csv, char *buf, manifest_row **rows, int *nrows, clpdd_err *e) {
    static const char *const path_names[] = {"path", "file", "filename", "img_filename", "image", NULL};
    static const char *const label_names[] = {"label", "y", "target", "class", NULL};
    int cpath = 0, clabel = 1, csplit = 2, ncols = -1, header = 0;
    int line = 0, cap = 0;
    char *p = buf;
    char *ln;
    while ((ln = csv_next_line(&p, &line)) != NULL) {
        if (!*ln) continue;
        char *f[CSV_MAXF];
        int nf = csv_fields(ln, f, CSV_MAXF);
        if (nf > CSV_MAXF) return clpdd_err_set(e, "data: %s:%d: more than %d fields", csv, line, CSV_MAXF);
        if (*nrows == 0 && !header && ncols < 0) {
            int hp = -1, hl = -1, hs = -1;
            for (int i = 0; i < nf; i++) {
                if (hp < 0 && name_in(f[i], path_names)) hp = i;
                else if (hl < 0 && name_in(f[i], label_names)) hl = i;
                else if (hs < 0 && strcasecmp(f[i], "split") == 0) hs = i;
            }
            if (hp >= 0) {
                if (hl < 0)
                    return clpdd_err_set(e, "data: %s:1: header has a path column but no label column (named label, y, "
                                            "target or class)",
                                         csv);
                header = 1, cpath = hp, clabel = hl, csplit = hs, ncols = nf;
                continue;
            }
            ncols = nf;
            if (nf < 2 || nf > 3)
                return clpdd_err_set(e, "data: %s:%d: expected path,label[,split] (2 or 3 fields), got %d", csv, line, nf);
            if (nf == 2) csplit = -1;
        }
        if (nf != ncols)
            return clpdd_err_set(e, "data: %s:%d: %d fields, expected %d as in the first row", csv, line, nf, ncols);
        if (!*f[cpath]) return clpdd_err_set(e, "data: %s:%d: empty path", csv, line);
        if (*nrows == cap) {
            cap = cap ? 2 * cap : 256;
            *rows = realloc(*rows, (size_t)cap * sizeof **rows);
            CLPDD_ASSERT(*rows);
        }
        (*rows)[(*nrows)++] = (manifest_row){f[cpath], f[clabel], csplit >= 0 ? f[csplit] : NULL, line};
    }
    return 0;
}

#define CLPDD_MAX_LABEL 100000000

/* a manifest's labels are all integers (class indices) or all class names: *numeric says which;
   an empty label or a mix is an error naming the lines */
static int manifest_label_kind(const char *csv, const manifest_row *rows, int nrows, int *numeric, clpdd_err *e) {
    int first_int = -1, first_name = -1;
    for (int i = 0; i < nrows; i++) {
        if (!*rows[i].label) return clpdd_err_set(e, "data: %s:%d: empty label", csv, rows[i].line);
        if (is_int(rows[i].label)) {
            if (first_int < 0) first_int = i;
        } else if (first_name < 0) first_name = i;
    }
    if (first_int >= 0 && first_name >= 0) {
        char a[48], b[48];
        return clpdd_err_set(e,
                             "data: %s:%d: label '%s' is not an integer, but line %d's label '%s' is: labels are "
                             "either all integers (class indices) or all class names, not a mix",
                             csv, rows[first_name].line, clpdd_escape(rows[first_name].label, a, sizeof a),
                             rows[first_int].line, clpdd_escape(rows[first_int].label, b, sizeof b));
    }
    *numeric = first_name < 0;
    return 0;
}

static int cmp_row_path(const void *a, const void *b) {
    const manifest_row *x = *(const manifest_row *const *)a, *y = *(const manifest_row *const *)b;
    int c = strcmp(x->path, y->path);
    return c ? c : (x->line > y->line) - (x->line < y->line);
}

/* every file once: the same path on two rows (two labels, or in two splits: a test on training
   images) is an error naming both lines */
static int manifest_unique(const char *csv, const manifest_row *rows, int nrows, clpdd_err *e) {
    const manifest_row **by = clpdd_xmalloc((size_t)(nrows ? nrows : 1) * sizeof *by);
    for (int i = 0; i < nrows; i++) by[i] = &rows[i];
    qsort(by, (size_t)nrows, sizeof *by, cmp_row_path);
    int rc = 0;
    for (int i = 1; i < nrows && rc == 0; i++) {
        const manifest_row *a = by[i - 1], *b = by[i];
        if (strcmp(a->path, b->path) != 0) continue;
        char p[600], la[48], lb[48], sa[48], sb[48];
        rc = clpdd_err_set(e,
                           "data: %s: lines %d and %d list the same file '%s' (labels '%s' and '%s', splits '%s' and "
                           "'%s'); each image may appear on one row only",
                           csv, a->line, b->line, clpdd_escape(a->path, p, sizeof p), clpdd_escape(a->label, la, sizeof la),
                           clpdd_escape(b->label, lb, sizeof lb), clpdd_escape(a->split ? a->split : "", sa, sizeof sa),
                           clpdd_escape(b->split ? b->split : "", sb, sizeof sb));
    }
    free(by);
    return rc;
}

/* the distinct split values of the rows (the first few), for messages */
static void split_values(const manifest_row *rows, int nrows, char *out, size_t n) {
    size_t len = 0;
    int shown = 0;
    out[0] = 0;
    for (int i = 0; i < nrows && shown < 6; i++) {
        int seen = 0;
        for (int j = 0; j < i && !seen; j++) seen = strcmp(rows[j].split, rows[i].split) == 0;
        if (seen) continue;
        char v[48];
        len += (size_t)snprintf(out + len, len < n ? n - len : 0, "%s'%s'", shown ? ", " : "",
                                clpdd_escape(rows[i].split, v, sizeof v));
        shown++;
        if (len >= n) break;
    }
}

/* the class names: classes_file's lines; else 0..(largest label) for numeric labels, or the
   label names in order of first appearance in the whole file */
static int manifest_classes(const char *csv, const manifest_row *rows, int nrows, int numeric, const char *classes_file,
                            strvec *classes, clpdd_err *e) {
    if (classes_file) return read_classes(classes_file, classes, e);
    if (numeric) {
        long mx = -1;
        for (int i = 0; i < nrows; i++) {
            errno = 0;
            long v = strtol(rows[i].label, NULL, 10);
            char shown[48];
            if (errno == ERANGE || v > CLPDD_MAX_LABEL)
                return clpdd_err_set(e, "data: %s:%d: label %s is implausibly large (class indices go up to %d)", csv,
                                     rows[i].line, clpdd_escape(rows[i].label, shown, sizeof shown), CLPDD_MAX_LABEL);
            if (v > mx) mx = v;
        }
        for (int c = 0; c < (int)mx + 1; c++) {
            char *s;
            if (asprintf(&s, "%d", c) < 0) abort();
            sv_push(classes, s);
        }
        return 0;
    }
    for (int i = 0; i < nrows; i++) {
        int found = 0;
        for (int c = 0; c < classes->n && !found; c++) found = strcmp(classes->s[c], rows[i].label) == 0;
        if (!found) sv_push(classes, clpdd_xstrdup(rows[i].label));
    }
    return 0;
}

/* one row: its label resolved against the class names and its file (relative to dir) checked,
   then added to l; a bad row is the error, or with skip_bad a note and no item */
static int manifest_item(clpdd_data_list *l, int *icap, const manifest_row *r, const char *csv, const char *dir,
                         const strvec *classes, int numeric, const char *classes_file, int skip_bad, clpdd_err *e) {
    int C = classes->n;
    int32_t lab = -1;
    char why[600] = "", shown[48];
    if (numeric) {
        errno = 0;
        long v = strtol(r->label, NULL, 10);
        if (errno == ERANGE || v < 0 || v >= C)
            snprintf(why, sizeof why, "label %s out of range 0..%d (%s)", clpdd_escape(r->label, shown, sizeof shown),
                     C - 1, classes_file ? classes_file : "the largest label in the file");
        else lab = (int32_t)v;
    } else {
        for (int c = 0; c < C && lab < 0; c++)
            if (strcmp(classes->s[c], r->label) == 0) lab = c;
        if (lab < 0)
            snprintf(why, sizeof why, "class '%s' is not in %s", clpdd_escape(r->label, shown, sizeof shown), classes_file);
    }
    char *full = NULL;
    if (r->path[0] == '/') full = clpdd_xstrdup(r->path);
    else if (asprintf(&full, "%s/%s", dir, r->path) < 0) abort();
    struct stat st;
    char fs[520];
    if (!*why && stat(full, &st) != 0) snprintf(why, sizeof why, "no such file %s", clpdd_escape(full, fs, sizeof fs));
    else if (!*why && !S_ISREG(st.st_mode))
        snprintf(why, sizeof why, "%s is %s, not an image file", clpdd_escape(full, fs, sizeof fs), clpdd_file_kind(st.st_mode));
    if (*why) {
        int rc = 0;
        char ps[520], ls[48];
        if (!skip_bad)
            rc = clpdd_err_set(e, "data: %s:%d: %s (row path '%s', label '%s')", csv, r->line, why,
                               clpdd_escape(r->path, ps, sizeof ps), clpdd_escape(r->label, ls, sizeof ls));
        else
            note_skip(l, "%s:%d: %s", csv, r->line, why);
        free(full);
        return rc;
    }
    size_t off = r->path[0] == '/' ? 0 : strlen(dir) + 1;
    push_item(l, icap, full, off, lab, r->line, &st);
    return 0;
}

/* is v one of the NULL-terminated list (or, with no list, split)? */
static int split_known(const char *v, const char *split, const char *const *splits) {
    if (!splits) return strcmp(v, split) == 0;
    for (; *splits; splits++)
        if (strcmp(v, *splits) == 0) return 1;
    return 0;
}

/* a row of another split: one the caller does not use is counted (and the first named); one that
   differs from a used split only in case is an error (a typo would silently drop its rows) */
static int manifest_other_split(clpdd_data_list *l, const manifest_row *r, const char *csv, const char *split,
                                const char *const *splits, clpdd_err *e) {
    if (split_known(r->split, split, splits)) return 0;
    const char *const one[] = {split, NULL};
    char v[48], w[48];
    for (const char *const *s = splits ? splits : one; *s; s++)
        if (strcasecmp(r->split, *s) == 0)
            return clpdd_err_set(e, "data: %s:%d: split '%s' differs from the split '%s' only in case", csv, r->line,
                                 clpdd_escape(r->split, v, sizeof v), clpdd_escape(*s, w, sizeof w));
    if (!l->other_first && asprintf(&l->other_first, "%s:%d: split '%s'", csv, r->line, clpdd_escape(r->split, v, sizeof v)) < 0)
        abort();
    l->other_rows++;
    return 0;
}

/* the rows checked as a whole: a split column when a split is asked for, labels all of one kind,
   every file once */
static int manifest_check(const char *csv, const manifest_row *rows, int nrows, const char *split, int *numeric,
                          clpdd_err *e) {
    if (nrows == 0) return clpdd_err_set(e, "data: %s: no rows (expected path,label,split)", csv);
    if (split && !rows[0].split)
        return clpdd_err_set(e,
                             "data: %s: no split column, so every row would be in the training and in the test split "
                             "(a test on training images); give each row its split: path,label,split (or a header "
                             "with a 'split' column)",
                             csv);
    if (manifest_label_kind(csv, rows, nrows, numeric, e)) return -1;
    return manifest_unique(csv, rows, nrows, e);
}

int clpdd_data_list_manifest(clpdd_data_list *l, const char *csv, const char *split, const char *const *splits,
                             const char *classes_file, int skip_bad, clpdd_err *e) {
    memset(l, 0, sizeof *l);
    snprintf(l->where, sizeof l->where, "%s", csv);
    uint8_t *buf;
    size_t len;
    if (clpdd_read_file(csv, &buf, &len, e)) return -1;
    const uint8_t *nul = memchr(buf, 0, len);
    if (nul) {
        int line = 1;
        size_t at = (size_t)(nul - buf);
        for (size_t q = 0; q < at; q++) line += buf[q] == '\n';
        free(buf);
        return clpdd_err_set(e, "data: %s:%d: a NUL byte (at byte %zu): a manifest is a text CSV file", csv, line, at);
    }
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", csv);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = 0;
    else snprintf(dir, sizeof dir, ".");
    manifest_row *rows = NULL;
    int nrows = 0, numeric = 1;
    int rc = manifest_rows(csv, (char *)buf, &rows, &nrows, e);
    strvec classes = {0};
    if (rc == 0) rc = manifest_check(csv, rows, nrows, split, &numeric, e);
    if (rc == 0) rc = manifest_classes(csv, rows, nrows, numeric, classes_file, &classes, e);
    int icap = 0;
    for (int i = 0; i < nrows && rc == 0; i++) {
        if (!split || !rows[i].split || strcmp(rows[i].split, split) == 0)
            rc = manifest_item(l, &icap, &rows[i], csv, dir, &classes, numeric, classes_file, skip_bad, e);
        else rc = manifest_other_split(l, &rows[i], csv, split, splits, e);
    }
    if (rc == 0 && l->n == 0) {
        char seen[400] = "";
        if (split && rows[0].split) split_values(rows, nrows, seen, sizeof seen);
        rc = clpdd_err_set(e, "data: %s: no usable rows%s%s%s%s%s", csv, split ? " for split '" : "", split ? split : "",
                           split ? "'" : "", *seen ? " (the split column holds " : "", *seen ? seen : "");
        if (*seen) {
            size_t k = strlen(e->msg);
            snprintf(e->msg + k, sizeof e->msg - k, ")");
        }
    }
    free(rows);
    free(buf);
    l->classes = classes.n;
    l->class_names = classes.s;
    if (rc) clpdd_data_list_free(l);
    return rc;
}

/* ---------------------------------------------------------------- groups */

/* the value of column `col` on every line of the CSV text buf (split in place): vals[line] points
   into buf (NULL on lines without one); the column found by name in the header row */
static int group_column(const char *csv, char *buf, const char *col, char ***vals, int *nlines, clpdd_err *e) {
    int lines = 1;
    for (const char *q = buf; *q; q++) lines += *q == '\n';
    *vals = clpdd_xcalloc((size_t)lines + 1, sizeof **vals);
    *nlines = lines;
    int c = -1, line = 0;
    char *p = buf;
    char *ln;
    while ((ln = csv_next_line(&p, &line)) != NULL) {
        if (!*ln) continue;
        char *f[CSV_MAXF];
        int nf = csv_fields(ln, f, CSV_MAXF);
        if (nf > CSV_MAXF) nf = CSV_MAXF;
        if (c < 0) {
            for (int i = 0; i < nf && c < 0; i++)
                if (strcasecmp(f[i], col) == 0) c = i;
            if (c < 0)
                return clpdd_err_set(e, "data: %s:%d: [data] group = %s, but the header row has no column of that name", csv,
                                     line, col);
            continue;
        }
        if (c >= nf || !*f[c]) return clpdd_err_set(e, "data: %s:%d: empty [data] group column '%s'", csv, line, col);
        (*vals)[line] = f[c];
    }
    return 0;
}

static int groups_manifest(clpdd_data_list *l, const char *csv, const char *col, clpdd_err *e) {
    uint8_t *buf;
    size_t len;
    if (clpdd_read_file(csv, &buf, &len, e)) return -1;
    char **vals = NULL;
    int nlines = 0, rc = group_column(csv, (char *)buf, col, &vals, &nlines, e);
    for (int i = 0; i < l->n && rc == 0; i++) {
        int ln = l->items[i].line;
        if (ln <= 0 || ln > nlines || !vals[ln])
            rc = clpdd_err_set(e, "data: %s:%d: no [data] group value (column '%s')", csv, ln, col);
        else l->items[i].group = clpdd_xstrdup(vals[ln]);
    }
    free(vals);
    free(buf);
    return rc;
}

/* imagefolder, `path:K`: the K-th folder of rel (class/f1/.../file) */
static int groups_folder(clpdd_data_list *l, const char *rule, clpdd_err *e) {
    char *end = NULL;
    long K = strncmp(rule, "path:", 5) == 0 ? strtol(rule + 5, &end, 10) : -1;
    if (K < 0 || K > 64 || !end || end == rule + 5 || *end)
        return clpdd_err_set(e, "data: [data] group = '%s': an image folder's group is path:K (the K-th folder below the "
                                "split folder, 0 = the class)", rule);
    for (int i = 0; i < l->n; i++) {
        const char *s = l->items[i].rel;
        for (long k = 0; k < K && s; k++) s = strchr(s, '/'), s = s ? s + 1 : NULL;
        const char *slash = s ? strchr(s, '/') : NULL;
        if (!slash)
            return clpdd_err_set(e, "data: %s: [data] group = %s, but the path has no folder %ld below the split folder",
                                 l->items[i].path, rule, K);
        l->items[i].group = strndup(s, (size_t)(slash - s));
        CLPDD_ASSERT(l->items[i].group);
    }
    return 0;
}

int clpdd_data_list_groups(clpdd_data_list *l, clpdd_dataset_kind kind, const char *csv, const char *rule, clpdd_err *e) {
    if (kind == CLPDD_DATASET_MANIFEST) return groups_manifest(l, csv, rule, e);
    if (kind == CLPDD_DATASET_IMAGEFOLDER) return groups_folder(l, rule, e);
    return clpdd_err_set(e, "data: [data] group is for manifests and image folders, not %s", clpdd_dataset_kind_name(kind));
}

/* ds->groups and info's sorted group values from the kept items idx (m) */
static void dataset_groups(clpdd_dataset *ds, clpdd_data_info *info, const clpdd_data_list *l, const int *idx, int m) {
    char **v = clpdd_xmalloc((size_t)(m ? m : 1) * sizeof *v);
    for (int i = 0; i < m; i++) v[i] = l->items[idx[i]].group;
    qsort(v, (size_t)m, sizeof *v, cmp_str);
    int nv = 0;
    for (int i = 0; i < m; i++)
        if (nv == 0 || strcmp(v[nv - 1], v[i]) != 0) v[nv++] = v[i];
    info->n_group_values = nv;
    info->group_values = clpdd_xmalloc((size_t)(nv ? nv : 1) * sizeof *info->group_values);
    for (int i = 0; i < nv; i++) info->group_values[i] = clpdd_xstrdup(v[i]);
    ds->groups = clpdd_xmalloc((size_t)(m ? m : 1) * sizeof *ds->groups);
    for (int i = 0; i < m; i++) {
        const char *key = l->items[idx[i]].group;
        char **hit = bsearch(&key, info->group_values, (size_t)nv, sizeof *hit, cmp_str);
        ds->groups[i] = (int32_t)(hit - info->group_values);
    }
    free(v);
}

/* ---------------------------------------------------------------- subset */

/* indices of a class-stratified random subset of size limit, in listing order: shuffle
   (splitmix64 seeded by subset_seed), take at most ceil(limit/C) per class, fill the rest from
   the shuffled order, sort */
static int *subset(const int32_t *labels, int N, int C, long limit, uint64_t seed, int *n_out) {
    int *keep = clpdd_xmalloc((size_t)N * sizeof *keep);
    for (int i = 0; i < N; i++) keep[i] = i;
    if (limit <= 0 || limit >= N) {
        *n_out = N;
        return keep;
    }
    int n = (int)limit;
    clpdd_rng r = {seed * 0x2545F4914F6CDD1DULL + 17};
    clpdd_rng_shuffle(&r, keep, N);
    int cap = (n + C - 1) / C, got = 0;
    int *count = clpdd_xcalloc((size_t)C, sizeof *count);
    char *mark = clpdd_xcalloc((size_t)N, 1);
    for (int i = 0; i < N && got < n; i++)
        if (count[labels[keep[i]]] < cap) count[labels[keep[i]]]++, mark[keep[i]] = 1, got++;
    for (int i = 0; i < N && got < n; i++)
        if (!mark[keep[i]]) mark[keep[i]] = 1, got++;
    int k = 0;
    for (int i = 0; i < N; i++)
        if (mark[i]) keep[k++] = i;
    free(mark);
    free(count);
    *n_out = k;
    return keep;
}

/* ---------------------------------------------------------------- images on demand */

/* An image folder / manifest dataset keeps its file list, not its pixels: images are read,
   decoded and preprocessed when asked for (the pool for requests of more than a few). */
typedef struct lazy_src {
    clpdd_data_list l;
    int *idx;                  /* (n) dataset index → listing index */
    int n, c, H, W;
    int resize, crop, grey, dct_scaling, workers;
    const char *first;         /* the file whose size is the dataset's (into l) */
} lazy_src;

/* (h, w, c) interleaved uint8 → (c, h, w) planes of floats in [0, 1] */
static void to_planar_float(float *dst, const uint8_t *src, int h, int w, int c) {
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int k = 0; k < c; k++)
                dst[((size_t)k * h + y) * w + x] = src[((size_t)y * w + x) * c + k] * (1.0f / 255.0f);
}

/* decode + preprocess listing item it; name carries the CSV line for manifests */
static int decode_item(const lazy_src *s, const clpdd_data_item *it, clpdd_image_decoder *dec, clpdd_image *im,
                       clpdd_err *e) {
    /* DCT scaling only under a Resize (a crop alone must see the stored pixels) */
    int ms = s->dct_scaling && s->resize > 0 ? s->resize : 0;
    clpdd_decode_opt o = {.grey = s->grey, .min_side = ms};
    char name[4400];
    if (it->line) snprintf(name, sizeof name, "%s (%s:%d)", it->path, s->l.where, it->line);
    else snprintf(name, sizeof name, "%s", it->path);
    uint8_t *buf;
    size_t len;
    if (clpdd_read_file(it->path, &buf, &len, e)) return -1;
    int rc = clpdd_image_decode(dec, buf, len, name, &o, im, e);
    free(buf);
    if (rc) return -1;
    clpdd_image_preprocess(im, s->resize, s->crop);
    return 0;
}

static int size_error(const lazy_src *s, const char *path, int w, int h, clpdd_err *e) {
    return clpdd_err_set(e,
                         "data: images differ in size: %s is %dx%d, %s is %dx%d (width x height); set [data] resize "
                         "and/or crop (e.g. resize = 256, crop = 224) to bring them to one size",
                         s->first, s->W, s->H, path, w, h);
}

typedef struct read_ctx {
    const lazy_src *s;
    const int *idx;
    int first;
    float *out;
    clpdd_image_decoder **dec; /* (workers) */
    char **err;                /* (count) */
} read_ctx;

static int read_one(void *vctx, int worker, long k) {
    read_ctx *x = vctx;
    const lazy_src *s = x->s;
    int i = x->idx ? x->idx[k] : x->first + (int)k;
    clpdd_err e;
    if (i < 0 || i >= s->n) {
        clpdd_err_set(&e, "data: image %d out of range 0..%d (%s)", i, s->n - 1, s->l.where);
        x->err[k] = clpdd_xstrdup(e.msg);
        return -1;
    }
    const clpdd_data_item *it = &s->l.items[s->idx[i]];
    clpdd_image im;
    if (decode_item(s, it, x->dec[worker], &im, &e) == 0) {
        if (im.h == s->H && im.w == s->W && im.c == s->c) {
            to_planar_float(x->out + (size_t)k * s->c * s->H * s->W, im.px, im.h, im.w, im.c);
            clpdd_image_free(&im);
            return 0;
        }
        size_error(s, it->path, im.w, im.h, &e);
        clpdd_image_free(&im);
    }
    x->err[k] = clpdd_xstrdup(e.msg);
    return -1;
}

static int lazy_read(void *vs, const int *idx, int first, int count, float *out, clpdd_err *e) {
    const lazy_src *s = vs;
    int workers = count < 8 ? 1 : s->workers > 0 ? s->workers : clpdd_pool_default_workers();
    if (workers > count) workers = count;
    read_ctx x = {.s = s, .idx = idx, .first = first, .out = out};
    x.dec = clpdd_xmalloc((size_t)workers * sizeof *x.dec);
    for (int w = 0; w < workers; w++) x.dec[w] = clpdd_image_decoder_new();
    x.err = clpdd_xcalloc((size_t)count, sizeof *x.err);
    long fail = clpdd_pool_run(workers, count, 1, read_one, &x);
    for (int w = 0; w < workers; w++) clpdd_image_decoder_free(x.dec[w]);
    free(x.dec);
    if (fail >= 0) clpdd_err_set(e, "%s", x.err[fail]);
    for (int k = 0; k < count; k++) free(x.err[k]);
    free(x.err);
    return fail >= 0 ? -1 : 0;
}

static void lazy_free(void *vs) {
    lazy_src *s = vs;
    clpdd_data_list_free(&s->l);
    free(s->idx);
    free(s);
}

/* on_bad_image = skip: every image decoded once at load (a pass over the files, nothing kept but
   their fate and size), so the dataset's indices never shift afterwards */
typedef struct check_ctx {
    const lazy_src *s;
    clpdd_image_decoder **dec;
    char **err; /* (n) */
    int *h, *w; /* (n) preprocessed size */
} check_ctx;

static int check_one(void *vctx, int worker, long i) {
    check_ctx *x = vctx;
    clpdd_image im;
    clpdd_err e;
    if (decode_item(x->s, &x->s->l.items[x->s->idx[i]], x->dec[worker], &im, &e)) {
        x->err[i] = clpdd_xstrdup(e.msg);
        return -1;
    }
    x->h[i] = im.h, x->w[i] = im.w;
    clpdd_image_free(&im);
    return 0;
}

void clpdd_data_info_free(clpdd_data_info *info) {
    for (int i = 0; i < info->classes; i++) free(info->class_names[i]);
    free(info->class_names);
    for (int i = 0; i < CLPDD_DATA_REPORT_FIRST; i++) free(info->skipped_first[i]);
    free(info->other_first);
    for (int i = 0; i < info->n_group_values; i++) free(info->group_values[i]);
    free(info->group_values);
    memset(info, 0, sizeof *info);
}

static void info_skip(clpdd_data_info *info, const char *msg) {
    if (info->skipped < CLPDD_DATA_REPORT_FIRST) info->skipped_first[info->skipped] = clpdd_xstrdup(msg);
    info->skipped++;
}

static uint64_t hash_cfg(uint64_t h, const clpdd_data_cfg *cfg) {
    int32_t v[5] = {cfg->resize, cfg->crop, cfg->grey, cfg->dct_scaling, cfg->skip_bad};
    h = clpdd_hash64(h, v, sizeof v);
    h = clpdd_hash64(h, &cfg->limit, sizeof cfg->limit);
    if (cfg->limit > 0) h = clpdd_hash64(h, &cfg->subset_seed, sizeof cfg->subset_seed);
    return h;
}

static int rc_ok(int first_ok) { return first_ok != -2; }

/* (h, w, c) interleaved → (c, h, w) planes */
static void to_planar(uint8_t *dst, const uint8_t *src, int h, int w, int c) {
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int k = 0; k < c; k++) dst[((size_t)k * h + y) * w + x] = src[((size_t)y * w + x) * c + k];
}

static int load_cifar(clpdd_dataset *ds, clpdd_data_info *info, const clpdd_data_cfg *cfg, int cifar100, clpdd_err *e) {
    uint8_t *px;
    int32_t *lab;
    int N;
    uint64_t h = clpdd_hash_str(CLPDD_HASH_SEED, clpdd_dataset_kind_name(cfg->kind));
    h = clpdd_hash_str(h, cfg->split);
    if (clpdd_cifar_load(cfg->root, cifar100, cfg->split, &px, &lab, &N, &h, e)) return -1;
    /* the records themselves: a batch rewritten with its size and mtime kept is another dataset */
    uint64_t content[3] = {clpdd_xxh3(px, (size_t)N * CLPDD_CIFAR_PIXELS), clpdd_xxh3(lab, (size_t)N * sizeof *lab),
                           (uint64_t)N};
    h = clpdd_hash64(h, content, sizeof content);
    int C = cifar100 ? 100 : 10, n;
    int train = strcmp(cfg->split, "train") == 0;
    int *keep;
    if (train) {
        keep = subset(lab, N, C, cfg->limit, cfg->subset_seed, &n);
    } else { /* test: the first `limit` */
        n = cfg->limit > 0 && cfg->limit < N ? (int)cfg->limit : N;
        keep = clpdd_xmalloc((size_t)n * sizeof *keep);
        for (int i = 0; i < n; i++) keep[i] = i;
    }
    int c = cfg->grey ? 1 : 3, H = 32, W = 32;
    clpdd_preprocess_size(32, 32, cfg->resize, cfg->crop, &H, &W);
    ds->pixels = clpdd_xmalloc((size_t)n * c * H * W);
    ds->labels = clpdd_xmalloc((size_t)n * sizeof *ds->labels);
    clpdd_image im = {.w = 32, .h = 32, .c = c};
    for (int i = 0; i < n; i++) {
        const uint8_t *s = px + (size_t)keep[i] * CLPDD_CIFAR_PIXELS;
        im.w = 32, im.h = 32, im.c = c;
        im.px = clpdd_xmalloc(32 * 32 * 3);
        for (int p = 0; p < 1024; p++) {
            uint8_t r = s[p], g = s[1024 + p], b = s[2048 + p];
            if (c == 1) im.px[p] = (uint8_t)(((uint32_t)r * 19595 + (uint32_t)g * 38470 + (uint32_t)b * 7471 + 0x8000) >> 16);
            else im.px[3 * p] = r, im.px[3 * p + 1] = g, im.px[3 * p + 2] = b;
        }
        clpdd_image_preprocess(&im, cfg->resize, cfg->crop);
        to_planar(ds->pixels + (size_t)i * c * H * W, im.px, H, W, c);
        clpdd_image_free(&im);
        ds->labels[i] = lab[keep[i]];
    }
    ds->n = n, ds->c = c, ds->H = H, ds->W = W, ds->classes = C;
    ds->id = hash_cfg(h, cfg);
    snprintf(ds->desc, sizeof ds->desc, "%s %s (%d of %d images, %dx%dx%d, %d classes)", clpdd_dataset_kind_name(cfg->kind),
             cfg->split, n, N, c, H, W, C);
    if (info) {
        info->classes = C;
        info->class_names = clpdd_xmalloc((size_t)C * sizeof *info->class_names);
        for (int k = 0; k < C; k++)
            if (asprintf(&info->class_names[k], "%d", k) < 0) abort();
        info->listed = N;
    }
    free(keep);
    free(px);
    free(lab);
    return 0;
}

/* an image folder's or a manifest's listing (CIFAR is read by load_cifar) */
static int list_source(clpdd_data_list *l, const clpdd_data_cfg *cfg, clpdd_err *e) {
    switch (cfg->kind) {
    case CLPDD_DATASET_IMAGEFOLDER: return clpdd_data_list_imagefolder(l, cfg->root, cfg->split, cfg->classes_file, e);
    case CLPDD_DATASET_MANIFEST:
        return clpdd_data_list_manifest(l, cfg->root, cfg->split, cfg->splits, cfg->classes_file, cfg->skip_bad, e);
    default:
        return clpdd_err_set(e, "data: unknown dataset '%s' (expected imagefolder, manifest, cifar10 or cifar100)",
                             clpdd_dataset_kind_name(cfg->kind));
    }
}

/* the dataset's id: kind, split, classes, files (each one's identity by [data] verify),
   preprocessing; -1 with a message when verify = content cannot read a file */
static int hash_list(const clpdd_data_list *l, const clpdd_data_cfg *cfg, uint64_t *out, clpdd_err *e) {
    uint64_t h = clpdd_hash_str(CLPDD_HASH_SEED, clpdd_dataset_kind_name(cfg->kind));
    h = clpdd_hash_str(h, cfg->split ? cfg->split : "");
    int content = cfg->verify == CLPDD_VERIFY_CONTENT;
    h = clpdd_hash_str(h, clpdd_data_verify_names[content]);
    for (int c = 0; c < l->classes; c++) h = clpdd_hash_str(h, l->class_names[c]);
    for (int i = 0; i < l->n; i++) {
        const clpdd_data_item *it = &l->items[i];
        h = clpdd_hash_str(h, it->rel);
        h = clpdd_hash64(h, &it->label, sizeof it->label);
        if (content) {
            uint64_t x;
            if (clpdd_file_content_hash(it->path, NULL, &x, e)) return clpdd_err_prefix(e, "data: [data] verify = content: ");
            h = clpdd_hash64(h, &x, sizeof x);
        } else {
            /* not the device: the nodes of a cluster mount one dataset under different device
               numbers, and `clpdd features --shard` jobs on them must agree on the key */
            int64_t id[4] = {it->size, it->mtime_ns, it->ctime_ns, (int64_t)it->ino};
            h = clpdd_hash64(h, id, sizeof id);
        }
    }
    *out = hash_cfg(h, cfg);
    return 0;
}

/* on_bad_image = skip: decode all once; the bad ones are left out of s->idx now, counted in info,
   and the sizes checked. Returns the images kept: 0 with a message when none, or sizes differ. */
static int check_all(lazy_src *s, clpdd_image_decoder **dec, int workers, clpdd_data_info *info, clpdd_err *e) {
    const clpdd_data_list *l = &s->l;
    int n = s->n, m = 0, *idx = s->idx;
    check_ctx x = {.s = s, .dec = dec};
    x.err = clpdd_xcalloc((size_t)(n ? n : 1), sizeof *x.err);
    x.h = clpdd_xcalloc((size_t)(n ? n : 1), sizeof *x.h);
    x.w = clpdd_xcalloc((size_t)(n ? n : 1), sizeof *x.w);
    clpdd_pool_run(workers, n, 0, check_one, &x);
    int first_ok = -1;
    for (int i = 0; i < n && rc_ok(first_ok); i++) {
        if (x.err[i]) {
            info_skip(info, x.err[i]);
            continue;
        }
        if (first_ok < 0) {
            first_ok = i;
            s->H = x.h[i], s->W = x.w[i], s->first = l->items[idx[i]].path;
        } else if (x.h[i] != s->H || x.w[i] != s->W) {
            size_error(s, l->items[idx[i]].path, x.w[i], x.h[i], e);
            first_ok = -2;
            break;
        }
        idx[m++] = idx[i];
    }
    if (m == 0 && first_ok != -2)
        clpdd_err_set(e, "data: %s: none of the %d images could be read (first: %s)", l->where, n,
                      n > 0 && x.err[0] ? x.err[0] : "none listed");
    for (int i = 0; i < n; i++) free(x.err[i]);
    free(x.err), free(x.h), free(x.w);
    return first_ok == -2 ? 0 : m;
}

/* on_bad_image = error: the first image sets the size, the others are checked when read.
   Returns the images kept (all, or 0 with a message). */
static int check_first(lazy_src *s, clpdd_image_decoder *dec, clpdd_err *e) {
    if (s->n == 0) return clpdd_err_set(e, "data: %s: no images listed", s->l.where), 0;
    clpdd_image im;
    if (decode_item(s, &s->l.items[s->idx[0]], dec, &im, e) == 0) {
        s->H = im.h, s->W = im.w, s->first = s->l.items[s->idx[0]].path;
        clpdd_image_free(&im);
        return s->n;
    }
    clpdd_err_prefix(e, "data: ");
    size_t k2 = strlen(e->msg);
    snprintf(e->msg + k2, sizeof e->msg - k2, " (on_bad_image = skip leaves such files out)");
    return 0;
}

int clpdd_dataset_load_source(clpdd_dataset *ds, clpdd_data_info *info, const clpdd_data_cfg *cfg, clpdd_err *e) {
    memset(ds, 0, sizeof *ds);
    clpdd_data_info tmp_info;
    if (!info) info = &tmp_info;
    memset(info, 0, sizeof *info);
    if (!cfg->root)
        return clpdd_err_set(e, "data: dataset kind and root must be set (imagefolder, manifest, cifar10, cifar100)");
    if (cfg->resize < 0 || cfg->crop < 0)
        return clpdd_err_set(e, "data: resize (%d) and crop (%d) must be ≥ 0", cfg->resize, cfg->crop);
    if (cfg->kind == CLPDD_DATASET_CIFAR10 || cfg->kind == CLPDD_DATASET_CIFAR100) {
        if (cfg->group && *cfg->group)
            return clpdd_err_set(e, "data: [data] group is for manifests and image folders, not %s",
                                 clpdd_dataset_kind_name(cfg->kind));
        int rc = load_cifar(ds, info, cfg, cfg->kind == CLPDD_DATASET_CIFAR100, e);
        if (info == &tmp_info) clpdd_data_info_free(info);
        return rc;
    }
    clpdd_data_list l;
    if (list_source(&l, cfg, e)) return -1;
    if (cfg->group && *cfg->group && clpdd_data_list_groups(&l, cfg->kind, cfg->root, cfg->group, e)) {
        clpdd_data_list_free(&l);
        return -1;
    }
    uint64_t h = 0;
    if (hash_list(&l, cfg, &h, e)) {
        clpdd_data_list_free(&l);
        return -1;
    }
    info->listed = l.n + l.skipped;
    info->ignored = l.ignored;
    for (int k = 0; k < CLPDD_DATA_REPORT_FIRST && k < l.skipped; k++) info->skipped_first[k] = clpdd_xstrdup(l.skipped_first[k]);
    info->skipped = l.skipped;
    info->other_rows = l.other_rows;
    info->other_first = l.other_first ? clpdd_xstrdup(l.other_first) : NULL;

    int32_t *labels = clpdd_xmalloc((size_t)(l.n ? l.n : 1) * sizeof *labels);
    for (int i = 0; i < l.n; i++) labels[i] = l.items[i].label;
    int n;
    int *idx = subset(labels, l.n, l.classes, cfg->limit, cfg->subset_seed, &n);
    free(labels);

    lazy_src *s = clpdd_xcalloc(1, sizeof *s);
    s->l = l;
    s->idx = idx;
    s->n = n, s->c = cfg->grey ? 1 : 3;
    s->resize = cfg->resize, s->crop = cfg->crop, s->grey = cfg->grey, s->dct_scaling = cfg->dct_scaling;
    s->workers = cfg->workers;
    int workers = cfg->workers > 0 ? cfg->workers : clpdd_pool_default_workers();
    if (workers > n) workers = n > 0 ? n : 1;
    clpdd_image_decoder **dec = clpdd_xmalloc((size_t)workers * sizeof *dec);
    for (int w = 0; w < workers; w++) dec[w] = clpdd_image_decoder_new();
    int m = cfg->skip_bad ? check_all(s, dec, workers, info, e) : check_first(s, dec[0], e);
    for (int w = 0; w < workers; w++) clpdd_image_decoder_free(dec[w]);
    free(dec);
    if (m == 0) {
        s->l.classes = 0; /* the class names stay with l, freed below */
        free(idx);
        free(s);
        goto fail;
    }
    s->n = m;
    ds->labels = clpdd_xmalloc((size_t)m * sizeof *ds->labels);
    for (int i = 0; i < m; i++) ds->labels[i] = l.items[idx[i]].label;
    if (cfg->group && *cfg->group) dataset_groups(ds, info, &l, idx, m);
    ds->n = m, ds->c = s->c, ds->H = s->H, ds->W = s->W, ds->classes = l.classes;
    ds->id = h;
    snprintf(ds->desc, sizeof ds->desc, "%s %.300s (%d of %d images%s, %dx%dx%d, %d classes)",
             clpdd_dataset_kind_name(cfg->kind), l.where, m, l.n, info->skipped ? ", some skipped" : "", s->c, s->H, s->W,
             l.classes);
    info->classes = l.classes;
    info->class_names = l.class_names;
    /* the list moves into the source, without its class names (now info's) */
    s->l = l;
    s->l.class_names = NULL;
    s->l.classes = 0;
    ds->src = s, ds->src_read = lazy_read, ds->src_free = lazy_free, ds->decodes_files = 1;
    if (info == &tmp_info) clpdd_data_info_free(info);
    return 0;
fail:
    clpdd_data_list_free(&l);
    clpdd_dataset_free(ds);
    clpdd_data_info_free(info);
    return -1;
}

int clpdd_data_same_classes(const clpdd_data_info *a, const char *a_what, const clpdd_data_info *b,
                            const char *b_what, clpdd_err *e) {
    int n = a->classes < b->classes ? a->classes : b->classes;
    for (int i = 0; i < n; i++)
        if (strcmp(a->class_names[i], b->class_names[i]) != 0)
            return clpdd_err_set(e, "data: %s and %s have different classes: class %d is '%s' in the %s, '%s' in the %s",
                                 a_what, b_what, i, a->class_names[i], a_what, b->class_names[i], b_what);
    if (a->classes != b->classes) {
        const clpdd_data_info *big = a->classes > b->classes ? a : b;
        return clpdd_err_set(e, "data: %s has %d classes, %s has %d (first extra: '%s'); list them in [data] classes",
                             a_what, a->classes, b_what, b->classes, big->class_names[n]);
    }
    return 0;
}
