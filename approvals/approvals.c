/* placeholder: approvals/approvals.c is written by the module's owner */
