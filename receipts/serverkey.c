/* placeholder: receipts/serverkey.c is written by the module's owner */
