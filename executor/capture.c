/* placeholder: executor/capture.c is written by the module's owner */
