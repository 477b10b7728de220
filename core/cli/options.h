/* One option parser for every command (the way git's parse-options serves every builtin): a
 * command declares its options as a table of specs; the parser takes `--opt value` and
 * `--opt=value` for every option with a value, refuses a control byte in any argument, checks
 * choices and numbers, and answers a missing value, an unknown option, a missing or unexpected
 * positional argument with the same messages for all commands (exit status 2).
 *
 * The common options (--set, --device, --plugin-path, --allow-plugin-path, --output, --quiet)
 * are declared once here; --device VALUE becomes the override experiment.device=VALUE, applied
 * after every --set (so it wins over a --set of the same key). */
#ifndef CLPDD_CLI_OPTIONS_H
#define CLPDD_CLI_OPTIONS_H
#include <stdio.h>

typedef enum {
    CLPDD_OPT_FLAG = 0, /* no value; counted */
    CLPDD_OPT_STRING,   /* any value */
    CLPDD_OPT_CHOICE,   /* one of `choices` ("a|b|c") */
    CLPDD_OPT_INT,      /* a decimal integer in [lo, hi], the whole string */
    CLPDD_OPT_SHARD,    /* i/N with 0 <= i < N <= CLPDD_SHARD_MAX */
    CLPDD_OPT_KIND_COUNT
} clpdd_opt_kind;

#define CLPDD_SHARD_MAX 1000000

typedef struct clpdd_option {
    const char *name;      /* long name without "--" */
    char alias;            /* short alias (-q), 0 when none */
    clpdd_opt_kind kind;
    int repeatable;        /* every value kept (no cap); else the last one counts */
    const char *value;     /* the value's name in the help ("DIR", "section.key=value") */
    const char *help;      /* one line or more, '\n'-separated */
    const char *choices;   /* CLPDD_OPT_CHOICE: "auto|cpu|cuda" */
    long lo, hi;           /* CLPDD_OPT_INT: the range */
    const char *set_key;   /* not NULL: the value also becomes the override set_key=VALUE */
    int hidden;            /* accepted but not listed in the help (a command that refuses it) */
} clpdd_option;

/* the common options */
extern const clpdd_option clpdd_opt_set, clpdd_opt_device, clpdd_opt_plugin_path, clpdd_opt_allow_plugin_path,
    clpdd_opt_output, clpdd_opt_quiet;

struct clpdd_args;

/* one command: a row of the command table (core/cli/commands.c) */
typedef struct clpdd_command {
    const char *name;
    const char *synopsis;                /* "run FILE.ini": the main usage's left column */
    const char *summary;                 /* one line for the main usage */
    const char *usage;                   /* usage line(s) and description, before the option rows */
    const clpdd_option *const *options;  /* NULL-terminated */
    const char *positional;              /* "FILE.ini", "PATH", "DIR": named in "missing ..." */
    int min_pos, max_pos;                /* how many positional arguments (max_pos < 0: any number) */
    int (*run)(const struct clpdd_args *a); /* exit status: 0, 1 failed while running, 2 usage/config */
} clpdd_command;

/* what the parser found: the values of each option, the positionals, the overrides */
typedef struct clpdd_args {
    const clpdd_command *cmd;
    int n_opts;
    struct clpdd_arg_values {
        int count;
        const char **values; /* (count) */
    } *got;                  /* (n_opts), in the order of cmd->options */
    const char **pos;        /* (n_pos) */
    int n_pos;
    const char **overrides;  /* (n_overrides): every --set in order, then each set_key option's value */
    int n_overrides;
    char **owned;            /* (n_owned) overrides formatted here */
    int n_owned;
} clpdd_args;

/* argv after the command's name into a: 0 parsed (free it with clpdd_args_free), 1 --help printed
   on stdout, -1 an error printed on stderr (nothing to free after either) */
int clpdd_args_parse(clpdd_args *a, const clpdd_command *c, int argc, char **argv);
void clpdd_args_free(clpdd_args *a);

/* accessors by long name (a name the command does not declare is a programming mistake: assert) */
int clpdd_args_has(const clpdd_args *a, const char *name);                /* 1 when the command declares it */
int clpdd_args_count(const clpdd_args *a, const char *name);              /* a flag: how many times */
const char *clpdd_args_str(const clpdd_args *a, const char *name);        /* the last value, or NULL */
const char *const *clpdd_args_list(const clpdd_args *a, const char *name, int *n); /* every value */
long clpdd_args_int(const clpdd_args *a, const char *name, long dflt);   /* CLPDD_OPT_INT, dflt when absent */
int clpdd_args_shard(const clpdd_args *a, const char *name, int *i, int *n); /* 1 and i/N when given, else 0 */

/* strict numbers: the whole string a decimal integer within [lo, hi] (no wrap-around, no
   trailing text); 0 or -1 */
int clpdd_parse_long(const char *s, long lo, long hi, long *out);
/* "i/N" with 0 <= i < N <= CLPDD_SHARD_MAX, both halves through clpdd_parse_long; 0 or -1 */
int clpdd_parse_shard(const char *s, int *i, int *n);

/* a command's help: its usage text, then one row per (listed) option */
void clpdd_command_help(const clpdd_command *c, FILE *f);
/* parse argv (after the command's name), answer --help, run the command; its exit status */
int clpdd_command_main(const clpdd_command *c, int argc, char **argv);

#endif
