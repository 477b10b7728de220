/* The option parser of every command: see options.h. */
#define _GNU_SOURCE
#include "cli/options.h"

#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

const clpdd_option clpdd_opt_set = {
    .name = "set", .kind = CLPDD_OPT_STRING, .repeatable = 1, .value = "section.key=value",
    .help = "override any key of the experiment (repeatable; `clpdd keys`, `clpdd plugins`)"};
const clpdd_option clpdd_opt_device = {
    .name = "device", .kind = CLPDD_OPT_CHOICE, .value = "auto|cpu|cuda", .choices = "auto|cpu|cuda",
    .set_key = "experiment.device", .help = "the device: the same as --set experiment.device=VALUE, after every --set"};
const clpdd_option clpdd_opt_plugin_path = {
    .name = "plugin-path", .kind = CLPDD_OPT_STRING, .value = "DIR[:DIR...]",
    .help = "plugin directories searched first (then CLPDD_PLUGIN_PATH, the build tree, the install prefix)"};
const clpdd_option clpdd_opt_allow_plugin_path = {
    .name = "allow-plugin-path", .kind = CLPDD_OPT_FLAG,
    .help = "let the INI name a plugin by path ([solver] name = ./my.so): its code runs, so only when you trust it"};
const clpdd_option clpdd_opt_output = {
    .name = "output", .kind = CLPDD_OPT_STRING, .value = "DIR", .help = "the output directory"};
const clpdd_option clpdd_opt_quiet = {
    .name = "quiet", .alias = 'q', .kind = CLPDD_OPT_FLAG, .help = "no progress on stderr"};

int clpdd_parse_long(const char *s, long lo, long hi, long *out) {
    if (!s || !*s || !(*s == '-' || *s == '+' || (*s >= '0' && *s <= '9'))) return -1;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (*end || errno == ERANGE || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

int clpdd_parse_shard(const char *s, int *i, int *n) {
    const char *slash = strchr(s, '/');
    if (!slash || slash == s || slash - s > 32) return -1;
    char head[40];
    snprintf(head, sizeof head, "%.*s", (int)(slash - s), s);
    long a, b;
    if (clpdd_parse_long(head, 0, CLPDD_SHARD_MAX - 1, &a) || clpdd_parse_long(slash + 1, 1, CLPDD_SHARD_MAX, &b) || a >= b)
        return -1;
    *i = (int)a, *n = (int)b;
    return 0;
}

/* "a|b|c" as "a, b or c" */
static void choices_text(const char *choices, char *out, size_t n) {
    size_t k = 0, len = strlen(choices);
    const char *last = strrchr(choices, '|');
    for (size_t i = 0; i < len && k + 5 < n; i++) {
        if (choices[i] != '|') out[k++] = choices[i];
        else if (choices + i == last) k += (size_t)snprintf(out + k, n - k, " or ");
        else k += (size_t)snprintf(out + k, n - k, ", ");
    }
    out[k < n ? k : n - 1] = 0;
}

static int is_choice(const char *choices, const char *v) {
    size_t len = strlen(v);
    for (const char *p = choices; p && *p;) {
        const char *bar = strchr(p, '|');
        size_t l = bar ? (size_t)(bar - p) : strlen(p);
        if (l == len && !strncmp(p, v, l)) return 1;
        p = bar ? bar + 1 : NULL;
    }
    return 0;
}

static int n_options(const clpdd_command *c) {
    int n = 0;
    while (c->options && c->options[n]) n++;
    return n;
}

static int index_of(const clpdd_args *a, const char *name) {
    for (int i = 0; i < a->n_opts; i++)
        if (!strcmp(a->cmd->options[i]->name, name)) return i;
    assert(!"the command declares no such option");
    return -1;
}

/* the usage, after a message on stderr; -1 */
static int fail_usage(const clpdd_command *c) {
    fputc('\n', stderr);
    clpdd_command_help(c, stderr);
    return -1;
}

/* the value's checks by kind; -1 and a message when it does not fit */
static int check_value(const clpdd_command *c, const clpdd_option *o, const char *v) {
    long num;
    int i, n;
    char shown[512], expected[256];
    if (o->kind == CLPDD_OPT_CHOICE && !is_choice(o->choices, v)) {
        choices_text(o->choices, expected, sizeof expected);
        return fprintf(stderr, "clpdd %s: --%s %s: expected %s\n", c->name, o->name, clpdd_escape(v, shown, sizeof shown), expected), -1;
    }
    if (o->kind == CLPDD_OPT_INT && clpdd_parse_long(v, o->lo, o->hi, &num))
        return fprintf(stderr, "clpdd %s: --%s %s: expected an integer from %ld to %ld\n", c->name, o->name,
                       clpdd_escape(v, shown, sizeof shown), o->lo, o->hi), -1;
    if (o->kind == CLPDD_OPT_SHARD && clpdd_parse_shard(v, &i, &n))
        return fprintf(stderr, "clpdd %s: --%s %s: expected i/N with 0 <= i < N <= %d (0-based, as $SLURM_ARRAY_TASK_ID with "
                               "--array=0-(N-1); e.g. --%s 0/4)\n", c->name, o->name, clpdd_escape(v, shown, sizeof shown),
                       CLPDD_SHARD_MAX, o->name), -1;
    return 0;
}

/* the option an argument names: "--name", "--name=value" (*inline_value set) or "-x"; -1 for none */
static int match(const clpdd_command *c, int n, const char *s, const char **inline_value) {
    *inline_value = NULL;
    for (int i = 0; i < n; i++) {
        const clpdd_option *o = c->options[i];
        size_t l = strlen(o->name);
        if (s[0] == '-' && s[1] == o->alias && o->alias && !s[2]) return i;
        if (strncmp(s, "--", 2) || strncmp(s + 2, o->name, l)) continue;
        if (!s[2 + l]) return i;
        if (s[2 + l] == '=') return *inline_value = s + 3 + l, i;
    }
    return -1;
}

static int has_control(const char *s) {
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p == 0x7f) return 1;
    return 0;
}

/* the overrides: every --set in order, then the last value of each set_key option */
static void collect_overrides(clpdd_args *a) {
    int n_sets;
    const char *const *sets = NULL;
    for (int i = 0; i < a->n_opts; i++)
        if (!strcmp(a->cmd->options[i]->name, "set")) sets = (const char *const *)a->got[i].values, n_sets = a->got[i].count;
    a->overrides = clpdd_xcalloc((size_t)(sets ? n_sets : 0) + (size_t)a->n_opts + 1, sizeof *a->overrides);
    a->owned = clpdd_xcalloc((size_t)a->n_opts + 1, sizeof *a->owned);
    for (int i = 0; sets && i < n_sets; i++) a->overrides[a->n_overrides++] = sets[i];
    for (int i = 0; i < a->n_opts; i++) {
        const clpdd_option *o = a->cmd->options[i];
        if (!o->set_key || !a->got[i].count) continue;
        char *s;
        if (asprintf(&s, "%s=%s", o->set_key, a->got[i].values[a->got[i].count - 1]) < 0) abort();
        a->owned[a->n_owned++] = s;
        a->overrides[a->n_overrides++] = s;
    }
}

/* one option argument at argv[*k]; 0 taken, 1 --help, -1 an error printed */
static int take_option(clpdd_args *a, int argc, char **argv, int *k) {
    const clpdd_command *c = a->cmd;
    const char *s = argv[*k], *v;
    if (!strcmp(s, "--help") || !strcmp(s, "-h")) return clpdd_command_help(c, stdout), 1;
    int i = match(c, a->n_opts, s, &v);
    if (i < 0) return fprintf(stderr, "clpdd %s: unknown option '%s'\n", c->name, s), fail_usage(c);
    const clpdd_option *o = c->options[i];
    if (o->kind == CLPDD_OPT_FLAG && v)
        return fprintf(stderr, "clpdd %s: option --%s takes no value\n", c->name, o->name), fail_usage(c);
    if (o->kind != CLPDD_OPT_FLAG && !v) {
        if (*k + 1 >= argc) return fprintf(stderr, "clpdd %s: option --%s needs a value\n", c->name, o->name), fail_usage(c);
        v = argv[++*k];
    }
    if (v && check_value(c, o, v)) return -1;
    struct clpdd_arg_values *g = &a->got[i];
    if (!g->values) g->values = clpdd_xcalloc((size_t)argc + 1, sizeof *g->values);
    if (!o->repeatable) g->count = 0;
    g->values[g->count++] = v;
    return 0;
}

static int parse_into(clpdd_args *a, const clpdd_command *c, int argc, char **argv) {
    a->cmd = c;
    a->n_opts = n_options(c);
    a->got = clpdd_xcalloc((size_t)a->n_opts + 1, sizeof *a->got);
    a->pos = clpdd_xcalloc((size_t)argc + 1, sizeof *a->pos);
    char shown[512];
    /* a path or value with a control byte (a newline, an escape sequence) would reach file names,
       config.ini and the terminal */
    for (int k = 0; k < argc; k++)
        if (has_control(argv[k]))
            return fprintf(stderr, "clpdd %s: argument '%s' has a control character; refusing it\n", c->name,
                           clpdd_escape(argv[k], shown, sizeof shown)), -1;
    int only_pos = 0;
    for (int k = 0; k < argc; k++) {
        const char *s = argv[k];
        if (!only_pos && !strcmp(s, "--")) {
            only_pos = 1;
        } else if (!only_pos && s[0] == '-' && s[1]) {
            int r = take_option(a, argc, argv, &k);
            if (r) return r;
        } else if (c->max_pos >= 0 && a->n_pos == c->max_pos) {
            if (c->max_pos == 0)
                return fprintf(stderr, "clpdd: %s takes no arguments (got '%s')\n", c->name, s), fail_usage(c);
            return fprintf(stderr, "clpdd %s: unexpected argument '%s'\n", c->name, s), fail_usage(c);
        } else {
            a->pos[a->n_pos++] = s;
        }
    }
    if (a->n_pos < c->min_pos) return fprintf(stderr, "clpdd %s: missing %s\n", c->name, c->positional), fail_usage(c);
    collect_overrides(a);
    return 0;
}

int clpdd_args_parse(clpdd_args *a, const clpdd_command *c, int argc, char **argv) {
    memset(a, 0, sizeof *a);
    int r = parse_into(a, c, argc, argv);
    if (r) clpdd_args_free(a);
    return r;
}

void clpdd_args_free(clpdd_args *a) {
    for (int i = 0; a->got && i < a->n_opts; i++) free(a->got[i].values);
    for (int i = 0; i < a->n_owned; i++) free(a->owned[i]);
    free(a->got), free(a->pos), free(a->overrides), free(a->owned);
    memset(a, 0, sizeof *a);
}

int clpdd_args_has(const clpdd_args *a, const char *name) {
    for (int i = 0; i < a->n_opts; i++)
        if (!strcmp(a->cmd->options[i]->name, name)) return 1;
    return 0;
}

int clpdd_args_count(const clpdd_args *a, const char *name) { return a->got[index_of(a, name)].count; }

const char *clpdd_args_str(const clpdd_args *a, const char *name) {
    const struct clpdd_arg_values *g = &a->got[index_of(a, name)];
    return g->count ? g->values[g->count - 1] : NULL;
}

const char *const *clpdd_args_list(const clpdd_args *a, const char *name, int *n) {
    const struct clpdd_arg_values *g = &a->got[index_of(a, name)];
    *n = g->count;
    return (const char *const *)g->values;
}

long clpdd_args_int(const clpdd_args *a, const char *name, long dflt) {
    const char *v = clpdd_args_str(a, name);
    long out = dflt;
    if (v && clpdd_parse_long(v, LONG_MIN, LONG_MAX, &out)) out = dflt; /* checked by the parser */
    return out;
}

int clpdd_args_shard(const clpdd_args *a, const char *name, int *i, int *n) {
    const char *v = clpdd_args_str(a, name);
    return v && clpdd_parse_shard(v, i, n) == 0;
}

/* an option's left column: "-q, --quiet", "    --output DIR" */
static void left_column(const clpdd_option *o, char *out, size_t n) {
    char alias[8] = "    ";
    if (o->alias) snprintf(alias, sizeof alias, "-%c, ", o->alias);
    snprintf(out, n, "%s--%s%s%s", alias, o->name, o->value ? " " : "", o->value ? o->value : "");
}

/* text after a column of `indent` characters, its lines ('\n') wrapped at spaces to end before HELP_WIDTH */
#define HELP_WIDTH 100
static void print_wrapped(FILE *f, const char *text, int indent) {
    int room = HELP_WIDTH - indent, first = 1;
    if (room < 30) room = 30;
    for (const char *p = text; *p;) {
        int len = (int)strcspn(p, "\n");
        if (len > room) { /* at the last space that fits; a longer word: the whole line */
            int k = room;
            while (k > 0 && p[k] != ' ') k--;
            if (k > 0) len = k;
        }
        fprintf(f, "%*s%.*s\n", first ? 0 : indent, "", len, p);
        first = 0;
        p += len;
        if (*p == ' ' || *p == '\n') p++;
    }
}

void clpdd_command_help(const clpdd_command *c, FILE *f) {
    fputs(c->usage, f);
    fprintf(f, "\noptions:\n");
    char left[96];
    int width = 10; /* "-h, --help" */
    for (int i = 0; c->options && c->options[i]; i++) {
        left_column(c->options[i], left, sizeof left);
        if (!c->options[i]->hidden && (int)strlen(left) > width) width = (int)strlen(left);
    }
    for (int i = 0; c->options && c->options[i]; i++) {
        if (c->options[i]->hidden) continue;
        left_column(c->options[i], left, sizeof left);
        fprintf(f, "  %-*s  ", width, left);
        print_wrapped(f, c->options[i]->help, width + 4);
    }
    fprintf(f, "  %-*s  this text\n", width, "-h, --help");
}

int clpdd_command_main(const clpdd_command *c, int argc, char **argv) {
    clpdd_args a;
    int r = clpdd_args_parse(&a, c, argc, argv);
    if (r) return r < 0 ? 2 : 0;
    int rc = c->run(&a);
    clpdd_args_free(&a);
    return rc;
}
