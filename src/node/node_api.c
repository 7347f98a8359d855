/* node — the daemon's /v0/ endpoints. Interim: the endpoints are being
 * written on their own branch (h-nodeapi); this file is replaced by it. */
#include "node/network_int.h"

int dn__node_api_start(dn_network *n, dn__node_api **out, char *err, size_t errlen)
{
    (void)n, (void)err, (void)errlen;
    *out = NULL;
    return 0;
}

void dn__node_api_stop(dn__node_api *a) { (void)a; }
dn_api *dn__node_api_server(dn__node_api *a) { (void)a; return NULL; }
