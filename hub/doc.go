// Package hub runs a Tether cloud hub: an embedded nats-server in operator
// (JWT) mode with a full directory account resolver, a system account,
// JetStream in domain "hub", optional cluster routes, a TLS leafnode listener
// and a WebSocket-TLS listener for edges, and a monitoring endpoint bound to
// loopback by default. Every hub also runs the enrollment registrar, which
// turns a one-time token's request into a leaf user for a key born on the
// device (registrar.go).
//
// Invariants: New validates and does no I/O; Start returns once the
// listeners accept connections; Shutdown is idempotent. Every listener that
// crosses a network speaks TLS 1.2 or later; routes use mutual TLS against
// the fabric CA; the edge listeners ask for (never require nor verify) a
// client certificate, whose key identifies an edge's run to the one-link
// guard (links.go), while the user JWT alone authenticates. The embedded server never installs signal handlers and its
// logger never exits the process.
package hub
