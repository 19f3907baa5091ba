/* placeholder: lib/error.c is written by the module's owner */
