// Package contract is the wire both ends of a Tether link agree on: every
// subject, stream, consumer and header name the edge and the cloud share,
// the built-in imports, exports and permissions (as jwt/v2 types), and the
// messages that cross the link.
//
// Invariants: the package is pure (no I/O, no nats-server or nats.go
// import; only the standard library, jwt/v2 and nkeys); subjects are written
// from the edge's point of view for leaf users (pub = may send to the hub,
// sub = may receive from it); the CLOUD account's exports are the same
// whatever the number of edges, so its JWT has a constant size. Nothing
// outside this package spells a Tether subject.
package contract
