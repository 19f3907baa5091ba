/* placeholder: policies/loader.c is written by the module's owner */
