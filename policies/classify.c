/* placeholder: policies/classify.c is written by the module's owner */
