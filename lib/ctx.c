/* placeholder: lib/ctx.c is written by the module's owner */
