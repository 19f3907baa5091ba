/* placeholder: contracts/paths.c is written by the module's owner */
