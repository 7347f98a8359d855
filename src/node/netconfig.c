/* node — the public face of the configuration (dn_network_config_*): a
 * thin wrapper over config.c that also remembers which keys were set
 * explicitly (flags), and carries what is not a key (the swarm key, an
 * identity handed in by the caller). */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "dmsnet/error.h"
#include "node/node_internal.h"

int dn_network_config_new(dn_network_config **out)
{
    dn_network_config *c = calloc(1, sizeof *c);
    if (!c)
        return DN_ENOMEM;
    int rc = dn__node_config_defaults(&c->c);
    if (rc) {
        free(c);
        return rc;
    }
    *out = c;
    return 0;
}

void dn__node_netconfig_clear(dn_network_config *cfg)
{
    dn__node_config_free(&cfg->c);
    sodium_memzero(cfg->psk, sizeof cfg->psk);
    free(cfg->swarm);
    cfg->swarm = NULL;
    cfg->has_psk = false;
}

void dn_network_config_free(dn_network_config *cfg)
{
    if (!cfg)
        return;
    dn__node_netconfig_clear(cfg);
    free(cfg);
}

int dn_network_config_load_file(dn_network_config *cfg, const char *path, char *err, size_t errlen)
{
    return dn__node_config_load_file(&cfg->c, path, err, errlen);
}

int dn_network_config_set(dn_network_config *cfg, const char *key, const char *value, char *err,
                          size_t errlen)
{
    int rc = dn__node_config_set(&cfg->c, key, value, err, errlen);
    int idx = dn__node_config_key_index(key);
    if (!rc && idx >= 0 && idx < 64)
        cfg->explicit_keys |= 1ull << idx;
    return rc;
}

int dn_network_config_check(const dn_network_config *cfg, char *err, size_t errlen)
{
    return dn__node_config_check(&cfg->c, err, errlen);
}

char *dn_network_config_to_json(const dn_network_config *cfg)
{
    json_t *j = dn__node_config_to_json(&cfg->c);
    if (!j)
        return NULL;
    char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(j);
    return s;
}

const char *dn_network_config_data_dir(const dn_network_config *cfg)
{
    return cfg->c.data_dir ? cfg->c.data_dir : "";
}

int dn_network_config_set_psk(dn_network_config *cfg, const uint8_t *psk, const char *swarm)
{
    char *name = NULL;
    if (psk && swarm && !(name = strdup(swarm)))
        return DN_ENOMEM;
    free(cfg->swarm);
    cfg->swarm = name;
    cfg->has_psk = psk != NULL;
    if (psk)
        memcpy(cfg->psk, psk, sizeof cfg->psk);
    else
        sodium_memzero(cfg->psk, sizeof cfg->psk);
    return 0;
}

int dn_network_config_set_identity(dn_network_config *cfg, const dn_privkey *key)
{
    cfg->identity_key = key;
    return 0;
}

/* A deep copy (the node keeps its own). */
int dn__node_netconfig_copy(dn_network_config *dst, const dn_network_config *src)
{
    memset(dst, 0, sizeof *dst);
    int rc = dn__node_config_copy(&dst->c, &src->c);
    if (rc)
        return rc;
    dst->explicit_keys = src->explicit_keys;
    dst->identity_key = src->identity_key;
    dst->has_psk = src->has_psk;
    memcpy(dst->psk, src->psk, sizeof dst->psk);
    if (src->swarm && !(dst->swarm = strdup(src->swarm)))
        return DN_ENOMEM;
    return 0;
}
