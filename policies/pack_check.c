/* Build-time check of the bundled policy packs: each is loaded with its
 * `examples` run, and a pack that contradicts one fails the build. The
 * packs are part of the binary, so loading one at run time
 * (wr_policy_load_bundled) need not run them again at every start.
 * usage: pack_check STAMP */
#include <stdio.h>
#include <string.h>

#include "policies/policies.h"

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: pack_check STAMP\n");
        return 2;
    }
    for (const char *const *name = wr_policy_bundled_names(); *name; name++) {
        const char *text = wr_policy_bundled_text(*name);
        wr_error err = {0};
        wr_policy *p = NULL;
        if (wr_policy_load_yaml(text, strlen(text), &p, &err) != WR_OK) {
            fprintf(stderr, "pack_check: bundled policy %s: %s\n", *name, err.message);
            return 1;
        }
        wr_policy_free(p);
    }
    FILE *f = fopen(argv[1], "w");
    if (!f || fputs("bundled policy packs: examples pass\n", f) < 0 || fclose(f) != 0) {
        fprintf(stderr, "pack_check: cannot write %s\n", argv[1]);
        return 1;
    }
    return 0;
}
