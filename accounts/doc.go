// Package accounts is the operator's store of Tether's identities: the
// operator, the system account, the CLOUD account and one account per edge
// (EDGE_<name>), with their NKeys, JWTs and user credentials, on disk. It
// signs; it does not speak NATS (package fleet sends what it signs to the
// hubs), and the files a site holds are written with internal/sitefile.
//
// Store layout (directory 0700; every seed, key and creds file 0600):
//
//	fabric.json                      hub URLs handed to edges in bundles
//	operator/operator.nk             operator identity seed
//	operator/signing.nk              operator signing seed (signs accounts)
//	operator/operator.jwt
//	accounts/<NAME>/account.nk       account identity seed
//	accounts/<NAME>/signing.nk       account signing seed (signs users; for an
//	                                 edge also the enroll users of its tokens)
//	accounts/<NAME>/account.jwt
//	accounts/EDGE_<e>/leaf-signing.nk scoped signing seed (role leaf): signs
//	                                 leaf users, whose permissions come from
//	                                 the scope's template
//	users/sys.creds, users/cloud.creds
//	edges/<name>/leaf.creds          the edge's leaf user (absent when its
//	                                 key was born on the device)
//	edges/<name>/leaf.jwt            the edge's current leaf user JWT (for an
//	                                 enrolled edge written by the registrar;
//	                                 its subject is the device's key)
//	accounts/CLOUD/scopes/<S>.nk     scoped signing seed of an access-policy role
//	                                 S (user.<name> for a policy user); kept
//	                                 when the role goes, so a rollback restores it
//	policy/applied.yaml              the access policy in force (absent: the
//	                                 default, policy.DefaultFile)
//	policy/history.json, history/<N>.yaml   applied versions and their files
//	policy/gateways.json             the compiled service gateways, per edge
//	policy/groups.json               the group telemetry streams and their members
//	policy/hubs.json                 hubs that answered a policy push
//	pki/ca.pem, pki/ca-key.pem       fabric CA
//	pki/hub.pem, pki/hub-key.pem     hub certificate (server and client auth)
//
// Enrollment tokens (NewEnrollToken) are not kept in the store: a token is
// a short-lived enroll user of the edge's account (pub $TETHER.ENROLL only)
// written to a 0600 file for the site. The store never holds the seed of a
// key born on a device, and makes no bundle for such an edge
// (ErrKeyOnDevice).
//
// Invariants: the operator has StrictSigningKeyUsage, so accounts are only
// valid when signed by the operator signing key; edge names are lowercase
// DNS labels; an edge account's JWT names only that edge's subjects, and the
// CLOUD account's JWT does not grow with the number of edges.
package accounts
