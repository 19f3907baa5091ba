/* placeholder: receipts/receipt.c is written by the module's owner */
