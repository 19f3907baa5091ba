/* placeholder: receipts/bundle.c is written by the module's owner */
