/* INI files and sections: the reader, raw entries with provenance, validation against declared
 * keys, typed access. */
#define _GNU_SOURCE
#include "io/ini.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct entry {
    char *key, *value, *file;
    int line;
    const clpdd_key *decl; /* set by validate */
    /* parsed forms */
    long long i;
    double f;
    int b;
    double floats[16];
    int n_floats;
    int learn; /* LEARNABLE: 1 when `learn` or `learn:<value>` (f is then the initial value) */
} entry;

struct clpdd_section {
    char *name, *file;
    entry *entries;
    int n, cap;
};

clpdd_section *clpdd_section_create(const char *name, const char *file) {
    clpdd_section *s = clpdd_xcalloc(1, sizeof *s);
    s->name = clpdd_xstrdup(name);
    s->file = clpdd_xstrdup(file ? file : "<none>");
    return s;
}

void clpdd_section_destroy(clpdd_section *s) {
    if (!s) return;
    for (int i = 0; i < s->n; i++) {
        free(s->entries[i].key);
        free(s->entries[i].value);
        free(s->entries[i].file);
    }
    free(s->entries);
    free(s->name);
    free(s->file);
    free(s);
}

const char *clpdd_section_name(const clpdd_section *s) { return s->name; }
int clpdd_section_count(const clpdd_section *s) { return s->n; }
const char *clpdd_section_key_at(const clpdd_section *s, int i) { return s->entries[i].key; }

static entry *find(const clpdd_section *s, const char *key) {
    for (int i = 0; i < s->n; i++)
        if (strcmp(s->entries[i].key, key) == 0) return &s->entries[i];
    return NULL;
}

void clpdd_section_put(clpdd_section *s, const char *key, const char *value, const char *file, int line) {
    entry *e = find(s, key);
    if (!e) {
        if (s->n == s->cap) {
            s->cap = s->cap ? 2 * s->cap : 8;
            s->entries = realloc(s->entries, (size_t)s->cap * sizeof *s->entries);
            CLPDD_ASSERT(s->entries);
        }
        e = &s->entries[s->n++];
        memset(e, 0, sizeof *e);
        e->key = clpdd_xstrdup(key);
    } else {
        free(e->value);
        free(e->file);
    }
    e->value = clpdd_xstrdup(value);
    e->file = clpdd_xstrdup(file ? file : "<none>");
    e->line = line;
}

const char *clpdd_section_raw(const clpdd_section *s, const char *key, int *line, const char **file) {
    entry *e = find(s, key);
    if (!e) return NULL;
    if (line) *line = e->line;
    if (file) *file = e->file;
    return e->value;
}

static const char *type_form(const clpdd_key *k, char *buf, size_t n) {
    switch (k->type) {
    case CLPDD_KEY_INT:
        if (k->min <= k->max) snprintf(buf, n, "an integer in [%g, %g]", k->min, k->max);
        else snprintf(buf, n, "an integer");
        break;
    case CLPDD_KEY_FLOAT:
        if (k->min <= k->max) snprintf(buf, n, "a number in [%g, %g]", k->min, k->max);
        else snprintf(buf, n, "a number");
        break;
    case CLPDD_KEY_BOOL: snprintf(buf, n, "true or false"); break;
    case CLPDD_KEY_STRING: snprintf(buf, n, "text"); break;
    case CLPDD_KEY_ENUM: snprintf(buf, n, "one of %s", k->choices); break;
    case CLPDD_KEY_FLOATS: snprintf(buf, n, "1 to 16 comma-separated numbers"); break;
    case CLPDD_KEY_LEARNABLE:
        snprintf(buf, n, "a number in [%g, %g], or learn (from the default %s) or learn:<initial value > 0 in that range>",
                 k->min, k->max, k->default_value ? k->default_value : "?");
        break;
    default: snprintf(buf, n, "?"); break;
    }
    return buf;
}

static char *trim(char *s) {
    while (isspace((unsigned char)*s)) s++;
    char *end = s + strlen(s);
    while (end > s && isspace((unsigned char)end[-1])) *--end = 0;
    return s;
}

static int parse_int(const char *v, long long *out) {
    errno = 0;
    char *end;
    long long x = strtoll(v, &end, 10);
    if (errno || end == v || *trim(end)) return -1;
    *out = x;
    return 0;
}

static int parse_float(const char *v, double *out) {
    errno = 0;
    char *end;
    double x = strtod(v, &end);
    if (errno || end == v || *trim(end) || !isfinite(x)) return -1;
    *out = x;
    return 0;
}

static int parse_bool(const char *v, int *out) {
    static const char *yes[] = {"true", "yes", "on", "1"}, *no[] = {"false", "no", "off", "0"};
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(v, yes[i]) == 0) return *out = 1, 0;
        if (strcasecmp(v, no[i]) == 0) return *out = 0, 0;
    }
    return -1;
}

static int in_choices(const char *choices, const char *v) {
    size_t n = strlen(v);
    const char *p = choices;
    while (p && *p) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && strncmp(p, v, n) == 0) return 1;
        p = bar ? bar + 1 : NULL;
    }
    return 0;
}

/* LEARNABLE: "learn" (from the declared default), "learn:<v>" (v > 0) or a fixed number; a learned
   value is optimised as log(value), so it must start positive (docs/design.md §1) */
static int parse_learnable(entry *e, const clpdd_key *k) {
    const char *v = e->value;
    e->learn = 0;
    if (strncmp(v, "learn", 5) == 0) {
        const char *init = v[5] == 0 ? k->default_value : (v[5] == ':' ? v + 6 : NULL);
        if (!init || parse_float(init, &e->f) || !(e->f > 0)) return -1;
        e->learn = 1;
    } else if (parse_float(v, &e->f)) {
        return -1;
    }
    return k->min <= k->max && (e->f < k->min || e->f > k->max) ? -1 : 0;
}

/* parse one value according to its declaration; 0 or -1 */
static int parse_value(entry *e, const clpdd_key *k) {
    const char *v = e->value;
    switch (k->type) {
    case CLPDD_KEY_INT:
        if (parse_int(v, &e->i)) return -1;
        if (k->min <= k->max && (e->i < k->min || e->i > k->max)) return -1;
        return 0;
    case CLPDD_KEY_FLOAT:
        if (parse_float(v, &e->f)) return -1;
        if (k->min <= k->max && (e->f < k->min || e->f > k->max)) return -1;
        return 0;
    case CLPDD_KEY_BOOL: return parse_bool(v, &e->b);
    case CLPDD_KEY_LEARNABLE: return parse_learnable(e, k);
    case CLPDD_KEY_STRING: return 0;
    case CLPDD_KEY_ENUM: return in_choices(k->choices, v) ? 0 : -1;
    case CLPDD_KEY_FLOATS: {
        char *copy = clpdd_xstrdup(v), *save = NULL;
        int n = 0, bad = 0;
        for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
            if (n == 16 || parse_float(trim(tok), &e->floats[n])) {
                bad = 1;
                break;
            }
            n++;
        }
        free(copy);
        e->n_floats = n;
        return (bad || n == 0) ? -1 : 0;
    }
    default: return -1;
    }
}

/* "file:line" for a value from a file, "--set" for a command-line override */
static const char *where(const entry *e, char *buf, size_t n) {
    char k[256];
    if (e->line < 0) snprintf(buf, n, "--set %s", clpdd_escape(e->key, k, sizeof k));
    else snprintf(buf, n, "%s:%d", e->file, e->line);
    return buf;
}

int clpdd_section_validate(clpdd_section *s, const clpdd_key *keys, int n_keys, clpdd_err *err) {
    char form[256], loc[1024], ek[256], es[256], ev[512];
    for (int i = 0; i < s->n; i++) {
        entry *e = &s->entries[i];
        const clpdd_key *k = NULL;
        for (int j = 0; j < n_keys; j++)
            if (strcmp(keys[j].name, e->key) == 0) k = &keys[j];
        if (!k) {
            char known[1024] = "";
            for (int j = 0; j < n_keys; j++) {
                if (j) strncat(known, ", ", sizeof known - strlen(known) - 1);
                strncat(known, keys[j].name, sizeof known - strlen(known) - 1);
            }
            return clpdd_err_set(err, "%s: unknown key '%s' in section [%s] (known keys: %s)",
                                 where(e, loc, sizeof loc), clpdd_escape(e->key, ek, sizeof ek),
                                 clpdd_escape(s->name, es, sizeof es), n_keys ? known : "none");
        }
        e->decl = k;
        if (parse_value(e, k))
            return clpdd_err_set(err, "%s: [%s] %s = '%s': expected %s", where(e, loc, sizeof loc),
                                 clpdd_escape(s->name, es, sizeof es), clpdd_escape(e->key, ek, sizeof ek),
                                 clpdd_escape(e->value, ev, sizeof ev), type_form(k, form, sizeof form));
    }
    /* defaults for what the file did not set; a NULL default means required */
    for (int j = 0; j < n_keys; j++) {
        if (find(s, keys[j].name)) continue;
        if (!keys[j].default_value)
            return clpdd_err_set(err, "%s: section [%s] needs key '%s' (%s: %s)", s->file, clpdd_escape(s->name, es, sizeof es), keys[j].name,
                                 type_form(&keys[j], form, sizeof form), keys[j].help);
        clpdd_section_put(s, keys[j].name, keys[j].default_value, "<default>", 0);
        entry *e = find(s, keys[j].name);
        e->decl = &keys[j];
        if (parse_value(e, &keys[j]))
            return clpdd_err_set(err, "internal: default '%s' of key [%s] %s is not %s", keys[j].default_value,
                                 s->name, keys[j].name, type_form(&keys[j], form, sizeof form));
    }
    return 0;
}

static const entry *get(const clpdd_section *s, const char *key, clpdd_key_type type) {
    const entry *e = find(s, key);
    if (!e || !e->decl || e->decl->type != type) {
        fprintf(stderr, "clpdd: internal error: section [%s] has no validated %s key '%s'\n", s->name,
                type == CLPDD_KEY_INT ? "int" : type == CLPDD_KEY_FLOAT ? "float" : "typed", key);
        abort();
    }
    return e;
}

long long clpdd_section_int(const clpdd_section *s, const char *key) { return get(s, key, CLPDD_KEY_INT)->i; }
double clpdd_section_float(const clpdd_section *s, const char *key) {
    const entry *e = find(s, key);
    return get(s, key, e && e->decl && e->decl->type == CLPDD_KEY_LEARNABLE ? CLPDD_KEY_LEARNABLE : CLPDD_KEY_FLOAT)->f;
}
int clpdd_section_learn(const clpdd_section *s, const char *key) { return get(s, key, CLPDD_KEY_LEARNABLE)->learn; }
int clpdd_section_bool(const clpdd_section *s, const char *key) { return get(s, key, CLPDD_KEY_BOOL)->b; }

const char *clpdd_section_str(const clpdd_section *s, const char *key) {
    const entry *e = find(s, key);
    if (!e || !e->decl) {
        fprintf(stderr, "clpdd: internal error: section [%s] has no validated key '%s'\n", s->name, key);
        abort();
    }
    return e->value;
}

int clpdd_section_floats(const clpdd_section *s, const char *key, double *out, int max) {
    const entry *e = get(s, key, CLPDD_KEY_FLOATS);
    for (int i = 0; i < e->n_floats && i < max; i++) out[i] = e->floats[i];
    return e->n_floats;
}

int clpdd_section_enum(const clpdd_section *s, const char *key) {
    const entry *e = get(s, key, CLPDD_KEY_ENUM);
    const char *p = e->decl->choices;
    size_t n = strlen(e->value);
    for (int i = 0; p; i++) {
        size_t len = strcspn(p, "|");
        if (len == n && strncmp(p, e->value, n) == 0) return i;
        p = p[len] ? p + len + 1 : NULL;
    }
    CLPDD_ASSERT(!"validated enum value not among its choices");
    return 0;
}

int clpdd_name_index(const char *const *names, int count, const char *name) {
    for (int i = 0; name && i < count; i++)
        if (strcmp(names[i], name) == 0) return i;
    return -1;
}

const char *clpdd_name_at(const char *const *names, int count, int i) { return i >= 0 && i < count ? names[i] : "?"; }

char *clpdd_names_join(const char *const *names, int count) {
    clpdd_strbuf b = {0};
    clpdd_sb_printf(&b, "%s", "");
    for (int i = 0; i < count; i++) clpdd_sb_printf(&b, "%s%s", i ? "|" : "", names[i]);
    return b.s;
}

int clpdd_section_is_set(const clpdd_section *s, const char *key) {
    const entry *e = find(s, key);
    return e && e->line != 0; /* 0 marks a default */
}

clpdd_section *clpdd_section_from_string(const char *name, const char *text, const clpdd_key *keys, int n_keys,
                                         clpdd_err *err) {
    clpdd_section *s = clpdd_section_create(name, "<string>");
    char *copy = clpdd_xstrdup(text ? text : ""), *save = NULL;
    int line = 0;
    for (char *tok = strtok_r(copy, ";", &save); tok; tok = strtok_r(NULL, ";", &save)) {
        line++;
        char *eq = strchr(tok, '=');
        if (!eq) {
            if (*trim(tok)) {
                char shown[256];
                clpdd_err_set(err, "<string>:%d: expected key = value, got '%s'", line,
                              clpdd_escape(trim(tok), shown, sizeof shown));
                free(copy);
                clpdd_section_destroy(s);
                return NULL;
            }
            continue;
        }
        *eq = 0;
        clpdd_section_put(s, trim(tok), trim(eq + 1), "<string>", line);
    }
    free(copy);
    if (clpdd_section_validate(s, keys, n_keys, err)) {
        clpdd_section_destroy(s);
        return NULL;
    }
    return s;
}

/* ---- whole INI files ---- */

clpdd_section *clpdd_ini_section_add(clpdd_ini *ini, const char *name) {
    clpdd_section *s = clpdd_ini_section(ini, name);
    if (s) return s;
    ini->sections = realloc(ini->sections, (size_t)(ini->n_sections + 1) * sizeof *ini->sections);
    CLPDD_ASSERT(ini->sections);
    s = clpdd_section_create(name, ini->path);
    ini->sections[ini->n_sections++] = s;
    return s;
}

/* ---- the INI reader ----
 *
 * Our own, not inih: inih reads through a fixed line buffer (200 bytes in Debian's build), so a
 * long value was cut into a bogus syntax error at the wrong line and the tail of a long comment
 * became a live key; it has no notion of a per-file limit, binary input or line numbers (Debian
 * builds it without INI_HANDLER_LINENO). The format is the simple INI inih reads:
 *   [section]                        a section header (whitespace or a comment may follow)
 *   key = value   or   key : value   split at the first '=' or ':'; both sides trimmed
 *   ; comment   or   # comment       whole-line comments; " ;" starts an inline comment
 * plus: a UTF-8 byte-order mark is skipped, CRLF line ends are accepted, an indented key line
 * is an error (inih would read it as a continuation of the previous value).
 * Limits: CLPDD_INI_MAX_LINE bytes per line, CLPDD_INI_MAX_FILE bytes per file; beyond them,
 * a NUL byte, a control byte or invalid UTF-8 the reader stops with an error naming file:line,
 * so /dev/zero or a binary file ends at its first line. */

/* the length of a valid UTF-8 sequence at p (at most n bytes), 0 when invalid */
static size_t utf8_len(const unsigned char *p, size_t n) {
    unsigned c = p[0];
    size_t k;
    unsigned min;
    if (c < 0x80) return 1;
    if (c >= 0xc2 && c <= 0xdf) k = 2, min = 0x80;
    else if (c >= 0xe0 && c <= 0xef) k = 3, min = 0x800;
    else if (c >= 0xf0 && c <= 0xf4) k = 4, min = 0x10000;
    else return 0;
    if (n < k) return 0;
    unsigned cp = c & (0x7f >> k);
    for (size_t i = 1; i < k; i++) {
        if ((p[i] & 0xc0) != 0x80) return 0;
        cp = (cp << 6) | (p[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    return k;
}

/* 0 when the line is text; else the message names the first bad byte */
static int check_text(const char *path, int line, const char *s, size_t n, clpdd_err *err) {
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        if (p[i] == 0)
            return clpdd_err_set(err, "%s:%d: NUL byte at column %zu (a binary file, not an INI file?)", path, line, i + 1);
        if ((p[i] < 0x20 && p[i] != '\t') || p[i] == 0x7f)
            return clpdd_err_set(err, "%s:%d: control character \\x%02x at column %zu (not a text INI file?)", path, line,
                                 p[i], i + 1);
        size_t k = utf8_len(p + i, n - i);
        if (!k)
            return clpdd_err_set(err, "%s:%d: invalid UTF-8 (byte \\x%02x at column %zu; not a text INI file?)", path,
                                 line, p[i], i + 1);
        i += k;
    }
    return 0;
}

/* strip an inline " ;" comment, then trailing whitespace */
static char *strip_inline_comment(char *s) {
    for (char *p = s; *p; p++)
        if (*p == ';' && p > s && isspace((unsigned char)p[-1])) {
            *p = 0;
            break;
        }
    return trim(s);
}

/* one logical line (NUL-terminated, without its newline); 0 or -1 with a message */
static int ini_line(clpdd_ini *ini, char *line, int lineno, char *section, size_t section_n, clpdd_err *err) {
    const char *path = ini->path;
    char k1[256], k2[256];
    char *s = line;
    int indented = (*s == ' ' || *s == '\t');
    s = trim(s);
    if (!*s || *s == ';' || *s == '#') return 0;
    if (*s == '[') {
        char *close = strchr(s, ']');
        if (!close) return clpdd_err_set(err, "%s:%d: syntax error: '[' without a closing ']'", path, lineno);
        char *rest = trim(close + 1);
        if (*rest && *rest != ';' && *rest != '#')
            return clpdd_err_set(err, "%s:%d: syntax error: '%s' after the section header", path, lineno,
                                 clpdd_escape(rest, k1, sizeof k1));
        *close = 0;
        char *name = trim(s + 1);
        if (!*name) return clpdd_err_set(err, "%s:%d: syntax error: empty section name '[]'", path, lineno);
        if (strlen(name) >= section_n)
            return clpdd_err_set(err, "%s:%d: section name longer than %zu bytes", path, lineno, section_n - 1);
        snprintf(section, section_n, "%s", name);
        return 0;
    }
    char *eq = strpbrk(s, "=:");
    if (!eq)
        return clpdd_err_set(err, "%s:%d: syntax error (expected '[section]', 'key = value' or a '#'/';' comment), got '%s'",
                             path, lineno, clpdd_escape(s, k1, sizeof k1));
    *eq = 0;
    char *key = trim(s), *value = strip_inline_comment(eq + 1);
    if (!*key) return clpdd_err_set(err, "%s:%d: syntax error: no key before '='", path, lineno);
    if (indented)
        return clpdd_err_set(err, "%s:%d: indented line is read as a continuation of the previous value; remove the indentation before '%s'",
                             path, lineno, clpdd_escape(key, k1, sizeof k1));
    if (!*section)
        return clpdd_err_set(err, "%s:%d: key '%s' outside any [section]", path, lineno, clpdd_escape(key, k1, sizeof k1));
    clpdd_section *sec = clpdd_ini_section_add(ini, section);
    int prev_line;
    if (clpdd_section_raw(sec, key, &prev_line, NULL))
        return clpdd_err_set(err, "%s:%d: [%s] %s is set twice (first at line %d)", path, lineno,
                             clpdd_escape(section, k2, sizeof k2), clpdd_escape(key, k1, sizeof k1), prev_line);
    clpdd_section_put(sec, key, value, path, lineno);
    return 0;
}

static int ini_read(FILE *f, clpdd_ini *ini, clpdd_err *err);

int clpdd_ini_load(const char *path, clpdd_ini *ini, clpdd_err *err) {
    memset(ini, 0, sizeof *ini);
    char shown[1024];
    clpdd_escape(path, shown, sizeof shown);
    ini->path = clpdd_xstrdup(shown); /* every message names the file as it can be shown */
    FILE *f = fopen(path, "r");
    if (!f) return clpdd_err_set(err, "%s: cannot open experiment file: %s", shown, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
        fclose(f);
        return clpdd_err_set(err, "%s: is a directory, not an experiment (.ini) file", shown);
    }
    int rc = ini_read(f, ini, err);
    fclose(f);
    return rc;
}

int clpdd_ini_load_memory(const char *buf, size_t len, const char *label, clpdd_ini *ini, clpdd_err *err) {
    memset(ini, 0, sizeof *ini);
    char shown[1024];
    ini->path = clpdd_xstrdup(clpdd_escape(label, shown, sizeof shown));
    if (len == 0) return 0;
    FILE *f = fmemopen((void *)buf, len, "r");
    if (!f) return clpdd_err_set(err, "%s: cannot read: %s", shown, strerror(errno));
    int rc = ini_read(f, ini, err);
    fclose(f);
    return rc;
}

static int ini_read(FILE *f, clpdd_ini *ini, clpdd_err *err) {
    const char *shown = ini->path;
    size_t cap = 4096, len = 0, total = 0;
    char *line = clpdd_xmalloc(cap);
    char section[256] = "";
    int lineno = 1, rc = 0, c;
    for (;;) {
        c = getc(f);
        if (c != EOF && ++total > CLPDD_INI_MAX_FILE) {
            rc = clpdd_err_set(err, "%s:%d: file longer than %d bytes (the limit for an experiment file)", shown, lineno,
                               CLPDD_INI_MAX_FILE);
            break;
        }
        if (c != EOF && c != '\n') {
            if (len + 1 > CLPDD_INI_MAX_LINE) {
                rc = clpdd_err_set(err, "%s:%d: line longer than %d bytes (the limit for one INI line)", shown, lineno,
                                   CLPDD_INI_MAX_LINE);
                break;
            }
            if (len + 2 > cap) {
                line = realloc(line, cap *= 2);
                CLPDD_ASSERT(line);
            }
            line[len++] = (char)c;
            if (c == 0) { /* stop at the first NUL: don't read the rest of /dev/zero */
                rc = check_text(shown, lineno, line, len, err);
                break;
            }
            continue;
        }
        if (c == EOF && ferror(f)) {
            rc = clpdd_err_set(err, "%s:%d: read error: %s", shown, lineno, strerror(errno));
            break;
        }
        if (len && line[len - 1] == '\r') len--;
        size_t skip = 0;
        if (lineno == 1 && len >= 3 && memcmp(line, "\xef\xbb\xbf", 3) == 0) skip = 3; /* UTF-8 BOM */
        line[len] = 0;
        if ((rc = check_text(shown, lineno, line + skip, len - skip, err))) break;
        if ((rc = ini_line(ini, line + skip, lineno, section, sizeof section, err))) break;
        if (c == EOF) break;
        len = 0;
        lineno++;
    }
    free(line);
    return rc;
}

int clpdd_ini_set(clpdd_ini *ini, const char *assignment, clpdd_err *err) {
    char shown[512];
    clpdd_err why;
    if (check_text("--set", 0, assignment, strlen(assignment), &why))
        return clpdd_err_set(err, "--set '%s': %s", clpdd_escape(assignment, shown, sizeof shown),
                             strstr(why.msg, ": ") + 2);
    const char *dot = strchr(assignment, '.');
    const char *eq = strchr(assignment, '=');
    if (!dot || !eq || dot > eq || dot == assignment || eq == dot + 1)
        return clpdd_err_set(err, "--set '%s': expected section.key=value", clpdd_escape(assignment, shown, sizeof shown));
    char section[128], key[128];
    size_t ls = (size_t)(dot - assignment), lk = (size_t)(eq - dot - 1);
    if (ls >= sizeof section || lk >= sizeof key)
        return clpdd_err_set(err, "--set '%s': name too long", clpdd_escape(assignment, shown, sizeof shown));
    memcpy(section, assignment, ls);
    section[ls] = 0;
    memcpy(key, dot + 1, lk);
    key[lk] = 0;
    char *val = clpdd_xstrdup(eq + 1);
    clpdd_section *s = clpdd_ini_section_add(ini, trim(section));
    /* line -1 marks a command-line override; report it as "--set" */
    clpdd_section_put(s, trim(key), trim(val), "--set", -1);
    free(val);
    return 0;
}

clpdd_section *clpdd_ini_section(const clpdd_ini *ini, const char *name) {
    for (int i = 0; i < ini->n_sections; i++)
        if (strcmp(clpdd_section_name(ini->sections[i]), name) == 0) return ini->sections[i];
    return NULL;
}

void clpdd_ini_free(clpdd_ini *ini) {
    for (int i = 0; i < ini->n_sections; i++) clpdd_section_destroy(ini->sections[i]);
    free(ini->sections);
    free(ini->path);
    memset(ini, 0, sizeof *ini);
}
