// Package policy turns Tether's data-path contract into jwt/v2 types: the
// permissions of an edge's leaf user, the imports of an edge account and the
// exports of the CLOUD account.
//
// Invariants: the package is pure (no I/O, no nats-server import); subjects
// are written from the edge's point of view for leaf users (pub = may send to
// the hub, sub = may receive from it); the CLOUD account's exports are the
// same whatever the number of edges, so its JWT has a constant size.
package policy
