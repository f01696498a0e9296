package leaf

import (
	"fmt"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"

	"github.com/tether-fabric/tether/contract"
)

// Local accounts and users of the edge's embedded server (see
// contract.EdgeLocalServices and docs/ARCHITECTURE.md, "Edge-local
// accounts"):
//
//   - the plumbing account (contract.EdgePlumbingAccount) is bound to the
//     leaf remote; its only user is the edge's own in-process connection
//     (forwarder's publishing side, downlink, status, control), whose NKey
//     is made per run and never leaves memory. It has no JetStream;
//   - the site account (contract.EdgeSiteAccount) is where every site
//     client lands: without credentials it becomes the "local" user, an
//     NKey nobody holds, with sitePermissions. Its JetStream holds the
//     telemetry buffer and the COMMANDS stream, made and read by a second
//     per-run in-process user of the edge.
//
// A server-sent message (a republish, a push consumer's delivery, a
// source) stays in the account of the stream or consumer that sends it,
// so nothing a site client configures can reach the link: only the edge's
// own plumbing connection publishes there.

// sitePermissions are those of every site client. The account boundary
// keeps them off the plumbing; these rules add: commands come only from
// the cloud (no publishing cmd.>); the site's streams are the edge's (a
// stream a site client made could answer publishes on telemetry.> before
// the buffer does, acknowledging what the buffer refused; the buffer and
// COMMANDS must not be changed, purged or deleted, nor messages deleted
// from them); and the plumbing's subjects give an explicit permissions
// violation rather than silently going nowhere.
func sitePermissions() *server.Permissions {
	const js = "$JS.API."
	p := &server.Permissions{
		Publish: &server.SubjectPermission{Deny: []string{
			contract.LocalCommands,
			js + "STREAM.CREATE.>", js + "STREAM.UPDATE.>", js + "STREAM.DELETE.>",
			js + "STREAM.PURGE.>", js + "STREAM.RESTORE.>", js + "STREAM.SNAPSHOT.>",
			js + "STREAM.MSG.DELETE.>", js + "STREAM.PEER.>", js + "STREAM.LEADER.>",
			js + "ACCOUNT.PURGE.>", js + "SERVER.>", js + "META.>",
			// No consumers on the buffer: a push consumer's deliveries
			// are the server's, so one delivering the buffer onto cmd.>
			// would put site data into COMMANDS as commands.
			js + "CONSUMER.CREATE." + BufferStream, js + "CONSUMER.CREATE." + BufferStream + ".>",
			js + "CONSUMER.DURABLE.CREATE." + BufferStream + ".>",
			"tether.>",
			// Tether's own telemetry subjects: audit records, the
			// quarantine, the end-of-batch marker.
			contract.ReservedTelemetryPrefix + ">",
			contract.ControlPrefix + ".>",
			contract.UplinkInbox + ".>",
		}},
		Subscribe: &server.SubjectPermission{Deny: []string{
			contract.UplinkInbox + ".>",
			contract.ControlPrefix + ".>",
		}},
	}
	// Named services: the gateway's plumbing, and (publish) the audit
	// records only the gateway writes into the buffer.
	svcPub, svcSub := contract.SiteServiceDeny()
	p.Publish.Deny = append(p.Publish.Deny, svcPub...)
	p.Subscribe.Deny = append(p.Subscribe.Deny, svcSub...)
	return p
}

// localUsers are the per-run public keys of the edge's own in-process
// users.
type localUsers struct {
	plumbing string // the forwarder's, downlink's, status' and control's connection
	site     string // the edge's own connection in the site account (buffer, COMMANDS)
}

// applyLocalAccounts sets the edge server's two accounts, the services
// they share, and its users (all NKeys, no passwords anywhere).
func applyLocalAccounts(o *server.Options, users localUsers) error {
	plumbing := server.NewAccount(contract.EdgePlumbingAccount)
	site := server.NewAccount(contract.EdgeSiteAccount)
	byName := map[string]*server.Account{plumbing.Name: plumbing, site.Name: site}
	for _, svc := range contract.EdgeLocalServices() {
		exp, imp := byName[svc.Exporter], byName[svc.Importer]
		resp := server.Singleton
		if svc.Stream {
			resp = server.Streamed
		}
		if err := exp.AddServiceExportWithResponse(svc.Subject, resp, []*server.Account{imp}); err != nil {
			return fmt.Errorf("local export %s from %s: %w", svc.Subject, exp.Name, err)
		}
		if err := imp.AddServiceImport(exp, svc.Subject, svc.Subject); err != nil {
			return fmt.Errorf("local import %s into %s: %w", svc.Subject, imp.Name, err)
		}
	}
	local, err := nkeys.CreateUser()
	if err != nil {
		return err
	}
	localPub, _ := local.PublicKey()
	o.Accounts = []*server.Account{plumbing, site}
	o.Nkeys = []*server.NkeyUser{
		{Nkey: localPub, Account: site, Permissions: sitePermissions()},
		{Nkey: users.plumbing, Account: plumbing},
		{Nkey: users.site, Account: site},
	}
	o.NoAuthUser = localPub
	for _, r := range o.LeafNode.Remotes {
		r.LocalAccount = plumbing.Name
	}
	return nil
}
