// Package layering holds no code: its test pins the direction of the
// tree's imports (docs/ARCHITECTURE.md, "Shape"):
//
//	cmd/tether -> hub, leaf, fleet -> accounts, policy -> contract
//
// The edge binary's code (leaf/...) never imports the cloud server (hub),
// the operator's store (accounts) or the operator-side clients (fleet);
// hub never imports leaf; contract imports only the standard library,
// jwt/v2 and nkeys; policy imports neither nats-server nor nats.go.
package layering
