package contract

// The edge's embedded server has two local accounts. The plumbing account
// holds what links the edge to the cloud — the leaf link to the hubs, the
// forwarder's publishing side, the downlink, status and control — and no
// site client can log into it. The site account is where every site client
// lands; it also holds the edge's two streams (the telemetry buffer and
// the delivered commands), which site clients may read and publish into
// but not create, change or delete. The accounts share only the services
// below, so no API of the site account (core or JetStream: republish, push
// consumer deliveries, sources, mirrors) can send or capture anything on
// the link.
const (
	// EdgePlumbingAccount is the edge-local account bound to the leaf
	// remote.
	EdgePlumbingAccount = "TETHER"
	// EdgeSiteAccount is the edge-local account of every site client.
	EdgeSiteAccount = "SITE"

	// ServiceDiscovery is the subject space of NATS micro services'
	// discovery ($SRV.PING, $SRV.INFO, $SRV.STATS).
	ServiceDiscovery = "$SRV.>"
)

// EdgeLocalService is one service the edge's local accounts share: the
// exporter answers requests on Subject, which the importer sees under the
// same name. Stream is true when one request may get several responses.
type EdgeLocalService struct {
	Subject  string
	Exporter string
	Importer string
	Stream   bool
}

// EdgeLocalServices returns the services between the edge's two local
// accounts, which are all of the plumbing a site client can reach:
//
//   - $TETHER.LEAF.STATUS (plumbing → site): the edge's status.
//   - cmd.> (site → plumbing): the downlink delivers commands into the
//     site account, where its COMMANDS stream stores them and answers the
//     downlink's publish; site clients may not publish cmd.> themselves.
//   - svc.> and $SRV.> (site → plumbing): the seam for edge services.
//     Requests for local services arrive from the hubs in the plumbing
//     account and reach the responders of the site account; an edge
//     gateway of the services capability may take this path over.
//
// Telemetry needs no service: site clients publish into the buffer in
// their own account, and the forwarder reads it there through the edge's
// own site-account connection.
func EdgeLocalServices() []EdgeLocalService {
	return []EdgeLocalService{
		{Subject: LeafStatusSubject, Exporter: EdgePlumbingAccount, Importer: EdgeSiteAccount},
		{Subject: LocalCommands, Exporter: EdgeSiteAccount, Importer: EdgePlumbingAccount},
		{Subject: LocalServices, Exporter: EdgeSiteAccount, Importer: EdgePlumbingAccount},
		{Subject: ServiceDiscovery, Exporter: EdgeSiteAccount, Importer: EdgePlumbingAccount, Stream: true},
	}
}

// Limits of the path from a site client to the cloud. A message a site
// publishes gets the forwarder's headers on its way to the hubs, and a
// command gets the downlink's on its way to the site, so each hop takes a
// little less than the one after it: nothing the edge acknowledges can be
// too big for the hubs, and nothing the cloud queues can be too big for
// the edge.
const (
	// HubMaxPayload is the largest message a hub takes from a leaf link
	// (nats-server's default max_payload and the edge accounts' JWT
	// payload limit); the edge server's max_payload is the same, so its
	// own connections can carry what the hubs take.
	HubMaxPayload = 1 << 20
	// ForwarderHeaderRoom bounds what the forwarder's headers (message
	// id, edge, origin, sequence: about 300 bytes) add to a site message,
	// with room to spare; the downlink's headers on a command are smaller.
	ForwarderHeaderRoom = 1 << 10
	// SiteMaxMessage is the largest message (headers and data) a site
	// client may publish on telemetry.>: the telemetry buffer refuses a
	// larger one at publish time ("message size exceeds maximum allowed"),
	// so nothing is acknowledged that the hubs would refuse.
	SiteMaxMessage = HubMaxPayload - ForwarderHeaderRoom
	// MaxCommandSize is the CLOUD COMMANDS stream's largest message: a
	// command the edge can still take with the downlink's headers.
	MaxCommandSize = HubMaxPayload - ForwarderHeaderRoom
	// EdgeMaxControlLine is the edge's longest protocol line (subject,
	// reply and sizes); the hubs take HubMaxControlLine, and the forwarder
	// adds its prefix and a reply subject to each message.
	EdgeMaxControlLine = 2048
	// HubMaxControlLine is the hubs' longest protocol line (nats-server's
	// default is 4 KiB). A client's CONNECT line carries its user JWT, and
	// a built-in reader's JWT lists the subjects of each consumer it owns
	// (CloudConsumerNames): about 4.2 KiB for a short user name, 8.4 KiB
	// for a 63-character one.
	HubMaxControlLine = 32 * 1024
)
