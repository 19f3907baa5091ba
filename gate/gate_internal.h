/* gate/ private: what its other files need of the wr_gate in gate.c. */
#ifndef WR_GATE_INTERNAL_H
#define WR_GATE_INTERNAL_H

#include "gate/gate.h"
#include "store/store.h"

wr_store *wr_gate__store(wr_gate *g);
const wr_keypair *wr_gate__key(wr_gate *g);
/* Tells the observer about an approval decision (accepted, refused, denied, revoked). */
void wr_gate__observe_approval(wr_gate *g, const char *identity, const char *request_id, const char *outcome);

#endif
