// Package fleet is the operator's side of a running fabric: the clients
// that the CLI (and tests) use against the hubs. It pushes account JWTs to
// every hub and collects each hub's answer (Push, PushAccount,
// DeleteAccount), prepares and forgets an edge's cloud side (PrepareEdge,
// ForgetEdge), shows the fleet as the hubs see it (Fleet), and orchestrates
// key rotation (Rotate, over the edge's own link) and decommissioning
// (Remove).
//
// Invariants: it only talks to a fabric that runs; the operator's secrets
// stay in the store (accounts.Store signs, fleet sends); every step that
// changes the hubs is idempotent and reports the hubs that did not answer,
// so a failed step can be run again.
package fleet
