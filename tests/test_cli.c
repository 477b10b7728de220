/* The command table and its one option parser (core/cli/commands.c, core/cli/options.c), driven
 * by the table itself: for every command, `--opt=value` and `--opt value` are the same, a control
 * byte is refused, an unknown option and a missing value give the same messages and exit 2,
 * --device becomes the last override, numbers and --shard are parsed strictly, and
 * `clpdd help CMD` prints the command's usage. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/commands.h"
#include "cli/options.h"
#include "support.h"

/* the parse of a command's argv (positionals added first), stderr captured into err */
static int parse(clpdd_args *a, const clpdd_command *c, const char *const *args, int n, char *err, size_t n_err) {
    char **argv = calloc((size_t)n + (size_t)c->min_pos + 1, sizeof *argv);
    int argc = 0;
    for (int i = 0; i < c->min_pos; i++) argv[argc++] = "p";
    for (int i = 0; i < n; i++) argv[argc++] = (char *)args[i];
    fflush(stderr);
    FILE *tmp = tmpfile();
    cr_assert(tmp);
    int saved = dup(2);
    dup2(fileno(tmp), 2);
    int r = clpdd_args_parse(a, c, argc, argv);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    rewind(tmp);
    size_t k = fread(err, 1, n_err - 1, tmp);
    err[k] = 0;
    fclose(tmp);
    free(argv); /* a's values point into args, not into argv */
    return r;
}

/* a valid value of an option */
static const char *valid_value(const clpdd_option *o, char *buf, size_t n) {
    switch (o->kind) {
    case CLPDD_OPT_CHOICE: snprintf(buf, n, "%.*s", (int)strcspn(o->choices, "|"), o->choices); break;
    case CLPDD_OPT_INT: snprintf(buf, n, "%ld", o->lo); break;
    case CLPDD_OPT_SHARD: snprintf(buf, n, "1/3"); break;
    default: snprintf(buf, n, "a.b=c"); break;
    }
    return buf;
}

Test(cli, every_value_option_takes_both_forms) {
    char err[8192], v[64], eq[128];
    for (int c = 0; clpdd_commands[c]; c++) {
        const clpdd_command *cmd = clpdd_commands[c];
        for (int i = 0; cmd->options[i]; i++) {
            const clpdd_option *o = cmd->options[i];
            if (o->kind == CLPDD_OPT_FLAG) continue;
            valid_value(o, v, sizeof v);
            snprintf(eq, sizeof eq, "--%s=%s", o->name, v);
            char flag[64];
            snprintf(flag, sizeof flag, "--%s", o->name);
            const char *one[] = {eq}, *two[] = {flag, v};
            clpdd_args a, b;
            cr_assert_eq(parse(&a, cmd, one, 1, err, sizeof err), 0, "%s %s: %s", cmd->name, eq, err);
            cr_assert_eq(parse(&b, cmd, two, 2, err, sizeof err), 0, "%s %s %s: %s", cmd->name, flag, v, err);
            cr_expect_str_eq(clpdd_args_str(&a, o->name), v, "%s %s", cmd->name, eq);
            cr_expect_str_eq(clpdd_args_str(&b, o->name), v, "%s %s %s", cmd->name, flag, v);
            cr_expect_eq(a.n_overrides, b.n_overrides, "%s --%s", cmd->name, o->name);
            for (int k = 0; k < a.n_overrides && k < b.n_overrides; k++) cr_expect_str_eq(a.overrides[k], b.overrides[k]);
            clpdd_args_free(&a), clpdd_args_free(&b);
        }
    }
}

Test(cli, set_in_both_forms_and_device_last) {
    char err[8192];
    int n_with_set = 0;
    for (int c = 0; clpdd_commands[c]; c++) {
        const clpdd_command *cmd = clpdd_commands[c];
        clpdd_args a;
        const char *none[] = {NULL};
        cr_assert_eq(parse(&a, cmd, none, 0, err, sizeof err), 0, "%s: %s", cmd->name, err);
        int has_set = clpdd_args_has(&a, "set"), has_device = 0;
        for (int i = 0; cmd->options[i]; i++) has_device |= cmd->options[i] == &clpdd_opt_device;
        clpdd_args_free(&a);
        if (!has_set) continue;
        n_with_set++;
        const char *args[] = {"--set=a.b=c", "--set", "d.e=f", "--set", "g.h=i=j"};
        cr_assert_eq(parse(&a, cmd, args, 5, err, sizeof err), 0, "%s: %s", cmd->name, err);
        cr_assert_eq(a.n_overrides, 3, "%s", cmd->name);
        cr_expect_str_eq(a.overrides[0], "a.b=c");
        cr_expect_str_eq(a.overrides[1], "d.e=f");
        cr_expect_str_eq(a.overrides[2], "g.h=i=j");
        clpdd_args_free(&a);
        if (!has_device) continue;
        const char *dev[] = {"--device", "cpu", "--set", "experiment.device=cuda"};
        cr_assert_eq(parse(&a, cmd, dev, 4, err, sizeof err), 0, "%s: %s", cmd->name, err);
        cr_assert_eq(a.n_overrides, 2, "%s", cmd->name);
        cr_expect_str_eq(a.overrides[1], "experiment.device=cpu", "%s: --device applies after every --set", cmd->name);
        clpdd_args_free(&a);
    }
    cr_expect_geq(n_with_set, 6, "run, check, eval, sweep, features, bench take --set");
}

Test(cli, control_byte_unknown_option_missing_value) {
    char err[8192], want[256];
    for (int c = 0; clpdd_commands[c]; c++) {
        const clpdd_command *cmd = clpdd_commands[c];
        clpdd_args a;
        const char *ctl[] = {"x\x1b[2Jy"};
        cr_expect_eq(parse(&a, cmd, ctl, 1, err, sizeof err), -1, "%s", cmd->name);
        cr_expect(strstr(err, "has a control character") && strstr(err, "\\x1b") && !strchr(err, '\x1b'), "%s: %s", cmd->name, err);
        const char *unknown[] = {"--no-such-option"};
        cr_expect_eq(parse(&a, cmd, unknown, 1, err, sizeof err), -1, "%s", cmd->name);
        snprintf(want, sizeof want, "clpdd %s: unknown option '--no-such-option'\n", cmd->name);
        cr_expect(strstr(err, want) == err, "%s: %s", cmd->name, err);
        cr_expect(strstr(err, "usage: clpdd"), "%s: the usage follows: %s", cmd->name, err);
        for (int i = 0; cmd->options[i]; i++) {
            const clpdd_option *o = cmd->options[i];
            if (o->kind == CLPDD_OPT_FLAG) continue;
            char flag[64];
            snprintf(flag, sizeof flag, "--%s", o->name);
            const char *missing[] = {flag};
            cr_expect_eq(parse(&a, cmd, missing, 1, err, sizeof err), -1, "%s %s", cmd->name, flag);
            snprintf(want, sizeof want, "clpdd %s: option --%s needs a value\n", cmd->name, o->name);
            cr_expect(strstr(err, want) == err, "%s: %s", cmd->name, err);
            const char *ctl_value[] = {flag, "a\nb"};
            cr_expect_eq(parse(&a, cmd, ctl_value, 2, err, sizeof err), -1, "%s %s with a newline", cmd->name, flag);
        }
    }
}

Test(cli, driver_exit_status_and_messages) {
    char out[65536], args[256], want[256];
    for (int c = 0; clpdd_commands[c]; c++) {
        const clpdd_command *cmd = clpdd_commands[c];
        snprintf(args, sizeof args, "help %s", cmd->name);
        cr_expect_eq(test_driver(args, out, sizeof out), 0, "%s: %s", args, out);
        cr_expect(strstr(out, cmd->usage) == out, "%s prints the usage first:\n%s", args, out);
        cr_expect(strstr(out, "-h, --help"), "%s lists the options:\n%s", args, out);
        snprintf(args, sizeof args, "%s --help", cmd->name);
        cr_expect_eq(test_driver(args, out, sizeof out), 0, "%s: %s", args, out);
        cr_expect(strstr(out, cmd->usage) == out, "%s:\n%s", args, out);
        snprintf(args, sizeof args, "%s --no-such-option", cmd->name);
        cr_expect_eq(test_driver(args, out, sizeof out), 2, "%s: %s", args, out);
        snprintf(want, sizeof want, "clpdd %s: unknown option '--no-such-option'", cmd->name);
        cr_expect(strstr(out, want), "%s: %s", args, out);
        cr_expect(strstr(cmd->usage, "usage: clpdd ") == cmd->usage, "%s's usage starts with its usage line", cmd->name);
        /* the main usage lists every command with its summary */
        cr_expect_eq(test_driver("--help", out, sizeof out), 0);
        cr_expect(strstr(out, cmd->summary), "%s's summary in the main usage:\n%s", cmd->name, out);
    }
    cr_expect_eq(test_driver("", out, sizeof out), 2, "no command: the usage, exit 2");
    cr_expect(strstr(out, "commands:"), "%s", out);
    cr_expect_eq(test_driver("help no-such-command", out, sizeof out), 2);
    cr_expect(strstr(out, "unknown command 'no-such-command'"), "%s", out);
    cr_expect_eq(test_driver("run x.ini --set", out, sizeof out), 2);
    cr_expect(strstr(out, "clpdd run: option --set needs a value"), "%s", out);
    cr_expect_eq(test_driver("features x.ini --device=tpu", out, sizeof out), 2);
    cr_expect(strstr(out, "clpdd features: --device tpu: expected auto, cpu or cuda"), "%s", out);
    cr_expect_eq(test_driver("--version", out, sizeof out), 0);
    cr_expect(strstr(out, "plugin ABI"), "%s", out);
}

Test(cli, numbers_and_shards_are_strict) {
    long v;
    cr_expect_eq(clpdd_parse_long("42", 0, 100, &v), 0);
    cr_expect_eq(v, 42);
    cr_expect_eq(clpdd_parse_long("-3", -5, 5, &v), 0);
    cr_expect_eq(v, -3);
    const char *bad[] = {"", " 1", "1 ", "1x", "0x10", "4294967298", "99999999999999999999999", "1e3", "--1", "-"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_expect_eq(clpdd_parse_long(bad[i], 0, 2147483647L, &v), -1, "'%s' must be refused", bad[i]);
    cr_expect_eq(clpdd_parse_long("101", 0, 100, &v), -1);
    int i, n;
    cr_expect_eq(clpdd_parse_shard("2/3", &i, &n), 0);
    cr_expect(i == 2 && n == 3);
    cr_expect_eq(clpdd_parse_shard("0/1", &i, &n), 0);
    const char *bad_shards[] = {"1/4294967298", "4294967297/4294967298", "3/3", "-1/3", "1/0", "1-3", "1/", "/3", "1/3x", "a/3", "1//3",
                                "0/1000001"};
    for (size_t k = 0; k < sizeof bad_shards / sizeof bad_shards[0]; k++)
        cr_expect_eq(clpdd_parse_shard(bad_shards[k], &i, &n), -1, "'%s' must be refused", bad_shards[k]);
    /* through the commands that take --shard, before anything is read */
    char out[16384];
    cr_expect_eq(test_driver("features x.ini --shard 1/4294967298", out, sizeof out), 2, "%s", out);
    cr_expect(strstr(out, "0 <= i < N"), "%s", out);
    cr_expect_eq(test_driver("sweep x.ini --shard=1/4294967298", out, sizeof out), 2, "%s", out);
    cr_expect(strstr(out, "0 <= i < N"), "%s", out);
    cr_expect_eq(test_driver("sweep x.ini --jobs 4294967298", out, sizeof out), 2, "%s", out);
    cr_expect(strstr(out, "--jobs 4294967298: expected an integer from 1 to 1024"), "%s", out);
    cr_expect_eq(test_driver("bench --preset imagenet100-ipc1-mini --steps=12x", out, sizeof out), 2, "%s", out);
}

Test(cli, positionals_flags_and_repeats) {
    char err[8192];
    const clpdd_command *run = clpdd_command_find("run"), *report = clpdd_command_find("report");
    const clpdd_command *keys = clpdd_command_find("keys");
    cr_assert(run && report && keys && clpdd_command_find("help") && !clpdd_command_find("frobnicate"));
    clpdd_args a;
    const char *two[] = {"extra"};
    cr_expect_eq(parse(&a, run, two, 1, err, sizeof err), -1);
    cr_expect(strstr(err, "clpdd run: unexpected argument 'extra'"), "%s", err);
    cr_expect_eq(parse(&a, keys, two, 1, err, sizeof err), -1);
    cr_expect(strstr(err, "keys takes no arguments (got 'extra')"), "%s", err);
    const char *flag_value[] = {"--quiet=1"};
    cr_expect_eq(parse(&a, run, flag_value, 1, err, sizeof err), -1);
    cr_expect(strstr(err, "clpdd run: option --quiet takes no value"), "%s", err);
    const char *dirs[] = {"b", "-q", "--", "-c", "--output=o"};
    cr_assert_eq(parse(&a, report, dirs, 5, err, sizeof err), 0, "%s", err);
    cr_expect_eq(a.n_pos, 4, "p, b and after --: -c, --output=o");
    cr_expect_str_eq(a.pos[2], "-c");
    cr_expect_eq(clpdd_args_count(&a, "quiet"), 1);
    cr_expect_null(clpdd_args_str(&a, "output"));
    clpdd_args_free(&a);
    /* no cap on --set */
    static const char *many[2 * 1000];
    for (int i = 0; i < 1000; i++) many[2 * i] = "--set", many[2 * i + 1] = "a.b=c";
    cr_assert_eq(parse(&a, run, many, 2000, err, sizeof err), 0, "%s", err);
    cr_expect_eq(a.n_overrides, 1000);
    clpdd_args_free(&a);
}
