// Package policy is Tether's declarative access policy: one reviewed file
// says which edges exist (with labels), which groups they form, which cloud
// principals may read, command or call what, which services each edge
// exposes and which edge-to-edge links exist. The package parses and
// validates that file and compiles it to jwt/v2 types and to the gateway
// configuration each edge enforces.
//
// Invariants: the package is pure (no I/O, no nats-server or nats.go
// import); compiling the same policy gives byte-identical output; nothing
// compiled is wider than what the file names.
package policy
