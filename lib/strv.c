/* placeholder: lib/strv.c is written by the module's owner */
