/* placeholder: lib/base64.c is written by the module's owner */
