/* placeholder: written by the server owner */
