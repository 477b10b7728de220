/* `clpdd eval PATH …`: score an existing distilled set (core/cli/eval_cmd.c). */
#ifndef CLPDD_EVAL_CMD_H
#define CLPDD_EVAL_CMD_H
#include "cli/options.h"

extern const clpdd_command clpdd_command_eval;
/* argv after "eval"; exit status as the driver's: 0, 1 (failed while running), 2 (usage/config) */
int clpdd_cmd_eval(int argc, char **argv);
#endif
