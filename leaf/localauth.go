package leaf

import (
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"

	"github.com/tether-fabric/tether/contract"
)

// Local users of the edge's embedded server: clients at the site connect
// without credentials and get the site's restricted permissions; the edge's
// own in-process connection (forwarder, downlink, status, control)
// authenticates with an NKey made per run that never leaves memory.

// localPermissions keep the site's clients off the edge's own plumbing:
// they cannot publish what crosses the link unbuffered (tether.up.>, the
// forwarder's subjects; tether.down.> and the cloud command consumer's
// acks, the downlink's), and cannot see the forwarder's and downlink's
// inbox or the control requests from the operator. Everything else —
// telemetry.>, cmd.>, svc.>, the edge's own JetStream API — is theirs.
func localPermissions(edge string) *server.Permissions {
	svcPub, svcSub := contract.SiteServiceDeny()
	p := &server.Permissions{
		Publish: &server.SubjectPermission{Deny: []string{
			contract.UplinkPrefix + ">",
			contract.DownlinkPrefix + ">",
			"$JS.ACK." + contract.CommandsStream + "." + contract.CommandConsumer(edge) + ".>",
			contract.ControlPrefix + ".>",
			contract.UplinkInbox + ".>",
		}},
		Subscribe: &server.SubjectPermission{Deny: []string{
			contract.UplinkInbox + ".>",
			contract.ControlPrefix + ".>",
		}},
	}
	p.Publish.Deny = append(p.Publish.Deny, svcPub...)
	p.Subscribe.Deny = append(p.Subscribe.Deny, svcSub...)
	return p
}

// applyLocalAuth sets the edge server's users, both NKey users (no
// passwords anywhere): a "local" key nobody holds, which is the no-auth
// user every site client becomes, with localPermissions; and the internal
// key internalPub of the edge's own connection.
func applyLocalAuth(o *server.Options, edge, internalPub string) error {
	local, err := nkeys.CreateUser()
	if err != nil {
		return err
	}
	localPub, _ := local.PublicKey()
	o.Nkeys = []*server.NkeyUser{
		{Nkey: localPub, Permissions: localPermissions(edge)},
		{Nkey: internalPub},
	}
	o.NoAuthUser = localPub
	return nil
}
