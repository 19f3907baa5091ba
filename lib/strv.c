/* Small growable vectors of owned strings (argv lists, path lists). */
#include "lib/lib.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int wr_strv_push(wr_strv *sv, const char *s)
{
    char **nv = realloc(sv->v, (sv->n + 2) * sizeof *nv);
    if (!nv)
        return WR_E_NOMEM;
    sv->v = nv;
    char *dup = strdup(s);
    if (!dup) {
        nv[sv->n] = NULL;
        return WR_E_NOMEM;
    }
    nv[sv->n++] = dup;
    nv[sv->n] = NULL; /* stays NULL-terminated so it can serve as an argv */
    return WR_OK;
}

bool wr_strv_contains(const wr_strv *sv, const char *s)
{
    for (size_t i = 0; i < sv->n; i++)
        if (strcmp(sv->v[i], s) == 0)
            return true;
    return false;
}

void wr_strv_free(wr_strv *sv)
{
    for (size_t i = 0; i < sv->n; i++)
        free(sv->v[i]);
    free(sv->v);
    sv->v = NULL;
    sv->n = 0;
}

int wr_strv_from_json(json_object *arr, wr_strv *out, wr_error *err)
{
    *out = (wr_strv){0};
    if (!json_object_is_type(arr, json_type_array))
        return wr_errorf(err, WR_E_INVALID, "", "expected an array of strings");
    size_t n = json_object_array_length(arr);
    for (size_t i = 0; i < n; i++) {
        json_object *el = json_object_array_get_idx(arr, i);
        char ptr[32];
        snprintf(ptr, sizeof ptr, "/%zu", i);
        if (!json_object_is_type(el, json_type_string)) {
            wr_strv_free(out);
            return wr_errorf(err, WR_E_INVALID, ptr, "%s: expected a string", ptr);
        }
        const char *s = json_object_get_string(el);
        /* json-c strings may hold \u0000; a C string would silently cut it. */
        if (strlen(s) != (size_t)json_object_get_string_len(el)) {
            wr_strv_free(out);
            return wr_errorf(err, WR_E_INVALID, ptr, "%s: string contains a NUL character", ptr);
        }
        if (wr_strv_push(out, s) != WR_OK) {
            wr_strv_free(out);
            return wr_errorf(err, WR_E_NOMEM, ptr, "out of memory");
        }
    }
    return WR_OK;
}

json_object *wr_strv_to_json(const wr_strv *sv)
{
    json_object *arr = json_object_new_array_ext((int)sv->n);
    if (!arr)
        return NULL;
    for (size_t i = 0; i < sv->n; i++) {
        json_object *s = json_object_new_string(sv->v[i]);
        if (!s || json_object_array_add(arr, s) != 0) {
            json_object_put(s);
            json_object_put(arr);
            return NULL;
        }
    }
    return arr;
}
