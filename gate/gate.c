/* placeholder: gate/gate.c is written by the module's owner */
