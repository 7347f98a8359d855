/* Internal access to the pubsub service (include/dmsnet/pubsub.h) for
 * tests and tools: the router it runs, for its detailed counters. */
#ifndef DN_PUBSUB_SERVICE_H
#define DN_PUBSUB_SERVICE_H

#include "dmsnet/pubsub.h"
#include "pubsub/router.h"

/* The service's router (valid while the host lives). */
const dn__pubsub_router *dn__pubsub_service_router(const dn_pubsub *ps);

#endif
