/* placeholder: contracts/contracts.c is written by the module's owner */
