/* placeholder: executor/launch.c is written by the module's owner */
