package leaf

import (
	"crypto/rand"
	"encoding/base64"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/tether-fabric/tether/policy"
)

// Local users of the edge's embedded server. Clients at the site connect
// without credentials and become localUser; the edge's own in-process
// connection (forwarder, downlink, status, control) is internalUser, with
// a password made per run that never leaves memory.
const (
	localUser    = "local"
	internalUser = "tether"
)

// localPermissions keep the site's clients off the edge's own plumbing:
// they cannot publish what crosses the link unbuffered (tether.up.>, the
// forwarder's subjects; tether.down.> and the cloud command consumer's
// acks, the downlink's), and cannot see the forwarder's and downlink's
// inbox or the control requests from the operator. Everything else —
// telemetry.>, cmd.>, svc.>, the edge's own JetStream API — is theirs.
func localPermissions(edge string) *server.Permissions {
	return &server.Permissions{
		Publish: &server.SubjectPermission{Deny: []string{
			policy.UplinkPrefix + ">",
			"tether.down.>",
			"$JS.ACK." + policy.CommandsStream + "." + policy.CommandConsumer(edge) + ".>",
			policy.ControlPrefix + ".>",
			policy.UplinkInbox + ".>",
		}},
		Subscribe: &server.SubjectPermission{Deny: []string{
			policy.UplinkInbox + ".>",
			policy.ControlPrefix + ".>",
		}},
	}
}

// applyLocalAuth sets the edge server's users: localUser (no password,
// the no-auth user) with localPermissions, and internalUser with pass.
func applyLocalAuth(o *server.Options, edge, pass string) {
	o.Users = []*server.User{
		{Username: localUser, Permissions: localPermissions(edge)},
		{Username: internalUser, Password: pass},
	}
	o.NoAuthUser = localUser
}

func newInternalPassword() (string, error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}
