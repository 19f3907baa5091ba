/* placeholder: store/store.c is written by the module's owner */
