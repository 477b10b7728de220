/* Configuration: INI sections (our own reader, core/io/ini.c) validated against declared keys.
 *
 * A clpdd_section holds the raw key = value pairs of one INI section with the file and line
 * each came from; clpdd_section_validate checks them against a key table (unknown key, bad
 * value → an error naming file:line, the key and the expected form), applies defaults and
 * makes the typed getters available. */
#ifndef CLPDD_CONFIG_H
#define CLPDD_CONFIG_H
#include "clpdd/plugin.h"
#include "util/util.h"

clpdd_section *clpdd_section_create(const char *name, const char *file);
void clpdd_section_destroy(clpdd_section *s);
const char *clpdd_section_name(const clpdd_section *s);
/* add or replace (a later value wins, as with --set) */
void clpdd_section_put(clpdd_section *s, const char *key, const char *value, const char *file, int line);
/* raw value or NULL; line/file of where it was set when asked */
const char *clpdd_section_raw(const clpdd_section *s, const char *key, int *line, const char **file);
int clpdd_section_count(const clpdd_section *s);
const char *clpdd_section_key_at(const clpdd_section *s, int i);
int clpdd_section_validate(clpdd_section *s, const clpdd_key *keys, int n_keys, clpdd_err *e);

/* typed getters (valid after validate; an undeclared key aborts: a programming error) */
long long clpdd_section_int(const clpdd_section *s, const char *key);
double clpdd_section_float(const clpdd_section *s, const char *key); /* FLOAT, or LEARNABLE's fixed/initial value */
int clpdd_section_learn(const clpdd_section *s, const char *key);    /* LEARNABLE: 1 when learned */
int clpdd_section_bool(const clpdd_section *s, const char *key);
const char *clpdd_section_str(const clpdd_section *s, const char *key);
int clpdd_section_floats(const clpdd_section *s, const char *key, double *out, int max);
int clpdd_section_is_set(const clpdd_section *s, const char *key);
/* an ENUM key's value as its index in the key's choices ("a|b|c": b is 1) */
int clpdd_section_enum(const clpdd_section *s, const char *key);

/* Name tables: an enum's names in the enum's order, written once beside the enum. */
/* the index of name in names[0 .. count), or -1 (NULL or not there) */
int clpdd_name_index(const char *const *names, int count, const char *name);
/* names[i], or "?" when i is out of range */
const char *clpdd_name_at(const char *const *names, int count, int i);
/* the names joined by '|': an ENUM key's choices (caller frees) */
char *clpdd_names_join(const char *const *names, int count);

/* test convenience: build and validate a section from "k = v; k = v" */
clpdd_section *clpdd_section_from_string(const char *name, const char *text, const clpdd_key *keys,
                                         int n_keys, clpdd_err *e);

/* The reader's limits: a longer line or file is an error naming file:line. Generous (the longest
   line in experiments/ is ~200 bytes) yet bounded, so /dev/zero or a huge file stops early. */
#define CLPDD_INI_MAX_LINE (64 * 1024)
#define CLPDD_INI_MAX_FILE (16 * 1024 * 1024)

/* a whole INI file: sections in order of first appearance */
typedef struct clpdd_ini {
    char *path; /* as given, control bytes escaped (clpdd_escape): for messages and comments */
    clpdd_section **sections;
    int n_sections;
} clpdd_ini;

/* -1 + a message naming file:line for: a missing/unreadable file, a directory, a line or file
   over the limits, a NUL/control byte or invalid UTF-8, a syntax error, a key outside a
   section, a key set twice, an indented key line. Free ini even on failure. */
int clpdd_ini_load(const char *path, clpdd_ini *ini, clpdd_err *e);
/* the same over a buffer (the fuzz target's entry); label names it in messages */
int clpdd_ini_load_memory(const char *buf, size_t len, const char *label, clpdd_ini *ini, clpdd_err *e);
/* --set section.key=value */
int clpdd_ini_set(clpdd_ini *ini, const char *assignment, clpdd_err *e);
clpdd_section *clpdd_ini_section(const clpdd_ini *ini, const char *name); /* NULL when absent */
clpdd_section *clpdd_ini_section_add(clpdd_ini *ini, const char *name);    /* existing or new, empty */
void clpdd_ini_free(clpdd_ini *ini);

#endif
