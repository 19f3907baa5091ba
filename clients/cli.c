#include <stdio.h>
#include <stdlib.h>

#include "clients/cli.h"
#include "gate/gate.h"

int cli_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("warrant: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return CLI_USAGE;
}

int cli_fail_err(int code, const char *what, const wr_error *err)
{
    if (err->path[0])
        fprintf(stderr, "warrant: %s: %s: %s\n", what, err->path, err->message);
    else
        fprintf(stderr, "warrant: %s: %s\n", what, err->message);
    return code;
}

void cli_print_json(json_object *obj)
{
    puts(json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
                                                 JSON_C_TO_STRING_NOSLASHESCAPE));
}

const char *cli_state_dir(const char *opt, char *buf)
{
    if (opt)
        return opt;
    int rc = wr_gate_default_state_dir(buf, CLI_PATH_MAX);
    if (rc == WR_OK)
        return buf;
    if (rc == WR_E_LIMIT)
        cli_fail("state dir from the environment is longer than %d bytes: give --state-dir", CLI_PATH_MAX - 1);
    else
        cli_fail("no state dir: give --state-dir, or set WARRANT_STATE_DIR or HOME");
    return NULL;
}
