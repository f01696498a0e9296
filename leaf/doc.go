// Package leaf runs a Tether edge site: an embedded nats-server that
// listens only on loopback, keeps its own JetStream domain (edge-<name>) on
// disk, and dials out to the hubs as a NATS leaf node authenticated by the
// edge's user JWT, over TLS or WebSocket-TLS, verifying the hubs against the
// fabric CA from its bundle. Enroll makes that bundle on the device from a
// one-time token: the edge's key is generated here and never leaves it.
//
// Invariants: New validates and does no I/O; Start returns once local
// clients can connect and JetStream is up, whether or not the hub is
// reachable; the link state is observable through Link at all times;
// Shutdown is idempotent. No listener binds a non-loopback address unless
// the configuration explicitly allows it. The creds never reach disk outside
// the bundle and never reach a log. While linked the edge reports its
// status (backlog, last error, stalled) to the cloud on tether.up.status.
// Its streams' budgets are fitted to at most 3/4 of the room on the data
// dir's filesystem, at start and, for the buffer, again every
// BudgetRefitInterval while it runs, so a full buffer refuses publishes
// before the disk fills; a refit never lowers a rejecting buffer's budget
// below what it holds, so it never drops an acknowledged message. The
// buffer's forwarder to the cloud is package leaf/forwarder; the leaf
// builds it, runs it, and reads its status and budget.
package leaf
