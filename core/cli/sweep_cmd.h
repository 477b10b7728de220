/* `clpdd sweep` and `clpdd report`: the command-line side of core/sweep/sweep.c and core/sweep/report.c.
 * argv holds the arguments after the command's name. Exit status (the driver's convention):
 * sweep: 0 every point of the shard finished, 1 at least one point failed (the count is on
 * the last line, in summary.md and in each failed point's error.txt), 2 a usage or
 * configuration error (nothing was written); report: 0, or 2 when nothing could be read. */
#ifndef CLPDD_SWEEP_CMD_H
#define CLPDD_SWEEP_CMD_H
#include "cli/options.h"

int clpdd_cmd_sweep(int argc, char **argv);
int clpdd_cmd_report(int argc, char **argv);

extern const clpdd_command clpdd_command_sweep, clpdd_command_report;

#endif
