/* The command table: every command of the driver declared once (name, summary, usage, options,
 * function), the way git's `struct cmd_struct commands[]` does; the main usage and `clpdd help`
 * are generated from it. */
#ifndef CLPDD_COMMANDS_H
#define CLPDD_COMMANDS_H
#include "cli/options.h"

/* the table, NULL-terminated */
extern const clpdd_command *const clpdd_commands[];
/* the command named name, or NULL */
const clpdd_command *clpdd_command_find(const char *name);
/* the main usage: the command list from the table's summaries */
void clpdd_main_usage(FILE *f);
/* the driver: argv[1] names the command. Exit status: 0 success, 1 a failure while running,
   2 a usage or configuration error (nothing was written) */
int clpdd_main(int argc, char **argv);

#endif
