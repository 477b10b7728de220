/* `clpdd plugins` and `clpdd keys`: what can be configured (core/cli/info_cmd.c). */
#ifndef CLPDD_INFO_CMD_H
#define CLPDD_INFO_CMD_H
#include "cli/options.h"

extern const clpdd_command clpdd_command_plugins, clpdd_command_keys;

#endif
