/* Configuration: INI sections (read with inih) validated against declared keys.
 *
 * A clpdd_section holds the raw key = value pairs of one INI section with the file and line
 * each came from; clpdd_section_validate checks them against a key table (unknown key, bad
 * value → an error naming file:line, the key and the expected form), applies defaults and
 * makes the typed getters available. */
#ifndef CLPDD_CONFIG_H
#define CLPDD_CONFIG_H
#include "clpdd/plugin.h"
#include "util.h"

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
double clpdd_section_float(const clpdd_section *s, const char *key);
int clpdd_section_bool(const clpdd_section *s, const char *key);
const char *clpdd_section_str(const clpdd_section *s, const char *key);
int clpdd_section_floats(const clpdd_section *s, const char *key, double *out, int max);
int clpdd_section_is_set(const clpdd_section *s, const char *key);

/* test convenience: build and validate a section from "k = v; k = v" */
clpdd_section *clpdd_section_from_string(const char *name, const char *text, const clpdd_key *keys,
                                         int n_keys, clpdd_err *e);

/* a whole INI file: sections in order of first appearance */
typedef struct clpdd_ini {
    char *path;
    clpdd_section **sections;
    int n_sections;
} clpdd_ini;

int clpdd_ini_load(const char *path, clpdd_ini *ini, clpdd_err *e);
/* --set section.key=value */
int clpdd_ini_set(clpdd_ini *ini, const char *assignment, clpdd_err *e);
clpdd_section *clpdd_ini_section(const clpdd_ini *ini, const char *name); /* NULL when absent */
clpdd_section *clpdd_ini_section_add(clpdd_ini *ini, const char *name);    /* existing or new, empty */
void clpdd_ini_free(clpdd_ini *ini);

#endif
