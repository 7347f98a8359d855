/* libFuzzer target for config.json (src/node/config.c): any bytes as the
 * file's text. Checks: the result is 0 or a documented negative code; a
 * refused text leaves the configuration exactly as it was (the file
 * applies whole or not at all) and says why; an accepted one gives a
 * configuration whose JSON form loads back to the same JSON form. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "dmsnet/error.h"
#include "node/config.h"

static char *dump(const dn__node_config *c)
{
    json_t *j = dn__node_config_to_json(c);
    if (!j)
        abort();
    char *s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(j);
    if (!s)
        abort();
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    dn__node_config c;
    if (dn__node_config_defaults(&c))
        return 0;
    char *before = dump(&c);
    char err[512] = "";
    int rc = dn__node_config_load_text(&c, (const char *)data, size, "config.json", err, sizeof err);
    char *after = dump(&c);
    if (rc) {
        if (rc > 0 || rc < -2000 || !err[0] || strcmp(before, after) != 0)
            abort();
    } else {
        /* The effective configuration, shown and read back, is itself. */
        dn__node_config again;
        if (dn__node_config_defaults(&again))
            abort();
        if (dn__node_config_load_text(&again, after, strlen(after), "shown", err, sizeof err))
            abort();
        char *third = dump(&again);
        if (strcmp(after, third) != 0)
            abort();
        free(third);
        dn__node_config_free(&again);
    }
    free(before);
    free(after);
    dn__node_config_free(&c);
    return 0;
}
