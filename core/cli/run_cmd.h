/* `clpdd run FILE.ini` and `clpdd check FILE.ini` (core/cli/run_cmd.c). */
#ifndef CLPDD_RUN_CMD_H
#define CLPDD_RUN_CMD_H
#include "cli/options.h"

extern const clpdd_command clpdd_command_run, clpdd_command_check;

#endif
