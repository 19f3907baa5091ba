/* placeholder: policies/evaluate.c is written by the module's owner */
