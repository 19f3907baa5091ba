/* placeholder: lib/canonical.c is written by the module's owner */
