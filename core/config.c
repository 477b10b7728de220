/* INI sections: raw entries with provenance, validation against declared keys, typed access. */
#define _GNU_SOURCE
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

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
} entry;

struct clpdd_section {
    char *name, *file;
    entry *entries;
    int n, cap;
    const clpdd_key *keys;
    int n_keys;
    int validated;
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
    s->validated = 0;
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
    if (e->line < 0) snprintf(buf, n, "--set %s", e->key);
    else snprintf(buf, n, "%s:%d", e->file, e->line);
    return buf;
}

int clpdd_section_validate(clpdd_section *s, const clpdd_key *keys, int n_keys, clpdd_err *err) {
    char form[256], loc[1024];
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
                                 where(e, loc, sizeof loc), e->key, s->name, n_keys ? known : "none");
        }
        e->decl = k;
        if (parse_value(e, k))
            return clpdd_err_set(err, "%s: [%s] %s = '%s': expected %s", where(e, loc, sizeof loc), s->name, e->key,
                                 e->value, type_form(k, form, sizeof form));
    }
    /* defaults for what the file did not set; a NULL default means required */
    for (int j = 0; j < n_keys; j++) {
        if (find(s, keys[j].name)) continue;
        if (!keys[j].default_value)
            return clpdd_err_set(err, "%s: section [%s] needs key '%s' (%s: %s)", s->file, s->name, keys[j].name,
                                 type_form(&keys[j], form, sizeof form), keys[j].help);
        clpdd_section_put(s, keys[j].name, keys[j].default_value, "<default>", 0);
        entry *e = find(s, keys[j].name);
        e->decl = &keys[j];
        if (parse_value(e, &keys[j]))
            return clpdd_err_set(err, "internal: default '%s' of key [%s] %s is not %s", keys[j].default_value,
                                 s->name, keys[j].name, type_form(&keys[j], form, sizeof form));
    }
    s->keys = keys;
    s->n_keys = n_keys;
    s->validated = 1;
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
double clpdd_section_float(const clpdd_section *s, const char *key) { return get(s, key, CLPDD_KEY_FLOAT)->f; }
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
                clpdd_err_set(err, "<string>:%d: expected key = value, got '%s'", line, trim(tok));
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

/* Debian's inih is built without INI_HANDLER_LINENO, so line numbers come from our own
   reader: inih reads one line per call and calls the handler before reading the next. */
typedef struct {
    clpdd_ini *ini;
    clpdd_err *err;
    FILE *f;
    int line;         /* the line last handed to inih */
    int continuation; /* it began with whitespace (inih then treats it as a continuation) */
    int failed;
} ini_ctx;

static char *read_line(char *str, int num, void *stream) {
    ini_ctx *c = stream;
    char *r = fgets(str, num, c->f);
    if (r) {
        c->line++;
        c->continuation = (str[0] == ' ' || str[0] == '\t');
    }
    return r;
}

static int on_entry(void *user, const char *section, const char *name, const char *value) {
    ini_ctx *c = user;
    int line = c->line;
    if (c->failed) return 0;
    if (c->continuation) {
        clpdd_err_set(c->err, "%s:%d: indented line is read as a continuation of '%s'; remove the indentation",
                      c->ini->path, line, name);
        c->failed = 1;
        return 0;
    }
    if (!*section) {
        clpdd_err_set(c->err, "%s:%d: key '%s' outside any [section]", c->ini->path, line, name);
        c->failed = 1;
        return 0;
    }
    clpdd_section *s = clpdd_ini_section_add(c->ini, section);
    int prev_line;
    const char *prev_file;
    if (clpdd_section_raw(s, name, &prev_line, &prev_file)) {
        clpdd_err_set(c->err, "%s:%d: [%s] %s is set twice (first at line %d)", c->ini->path, line, section, name,
                      prev_line);
        c->failed = 1;
        return 0;
    }
    clpdd_section_put(s, name, value, c->ini->path, line);
    return 1;
}

int clpdd_ini_load(const char *path, clpdd_ini *ini, clpdd_err *err) {
    memset(ini, 0, sizeof *ini);
    ini->path = clpdd_xstrdup(path);
    FILE *f = fopen(path, "r");
    if (!f) return clpdd_err_set(err, "%s: cannot open experiment file: %s", path, strerror(errno));
    ini_ctx c = {ini, err, f, 0, 0, 0};
    int rc = ini_parse_stream(read_line, &c, on_entry, &c);
    fclose(f);
    if (c.failed) return -1;
    if (rc > 0)
        return clpdd_err_set(err, "%s:%d: syntax error (expected '[section]', 'key = value' or a '#'/';' comment)",
                             path, rc);
    if (rc < 0) return clpdd_err_set(err, "%s: cannot read experiment file", path);
    return 0;
}

int clpdd_ini_set(clpdd_ini *ini, const char *assignment, clpdd_err *err) {
    const char *dot = strchr(assignment, '.');
    const char *eq = strchr(assignment, '=');
    if (!dot || !eq || dot > eq || dot == assignment || eq == dot + 1)
        return clpdd_err_set(err, "--set '%s': expected section.key=value", assignment);
    char section[128], key[128];
    size_t ls = (size_t)(dot - assignment), lk = (size_t)(eq - dot - 1);
    if (ls >= sizeof section || lk >= sizeof key) return clpdd_err_set(err, "--set '%s': name too long", assignment);
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
