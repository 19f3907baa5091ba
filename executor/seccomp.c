/* placeholder: executor/seccomp.c is written by the module's owner */
