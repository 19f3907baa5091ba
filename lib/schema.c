/* placeholder: lib/schema.c is written by the module's owner */
