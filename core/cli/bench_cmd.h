/* `clpdd bench` (core/cli/bench_cmd.c): the distillation step's cost per method at the paper's
 * shapes, on random weights and images. argv holds the arguments after the command's name.
 * Exit status: 0 every cell ran and the tables were written, 1 a cell failed or a file could
 * not be written (the table says which), 2 a usage error. */
#ifndef CLPDD_BENCH_CMD_H
#define CLPDD_BENCH_CMD_H
#include "cli/options.h"

extern const clpdd_command clpdd_command_bench;
int clpdd_cmd_bench(int argc, char **argv);

#endif
