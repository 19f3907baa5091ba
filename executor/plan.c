/* placeholder: executor/plan.c is written by the module's owner */
