package contract

// The edge's embedded server has two local accounts. The plumbing account
// holds everything the edge's own code uses — the leaf link to the hubs,
// the telemetry buffer, the forwarder, the downlink, status and control —
// and no site client can log into it. The site account is where every
// client at the site lands; it reaches the plumbing only through the
// service exports and imports below, so no API of the site account (core
// or JetStream: republish, push consumer deliveries, sources, mirrors)
// can send or capture anything of the plumbing.
const (
	// EdgePlumbingAccount is the edge-local account bound to the leaf
	// remote.
	EdgePlumbingAccount = "TETHER"
	// EdgeSiteAccount is the edge-local account of every site client.
	EdgeSiteAccount = "SITE"

	// LeafStatusSubject is where the edge answers with its status (as
	// 'tether leaf status' shows it); served in the plumbing account,
	// imported by the site account.
	LeafStatusSubject = "$TETHER.LEAF.STATUS"
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
// accounts, which are all a site client can reach of the plumbing:
//
//   - telemetry.> (plumbing → site): a site publish is stored in the
//     plumbing's disk buffer and its PubAck comes back through the import.
//   - $TETHER.LEAF.STATUS (plumbing → site): the edge's status.
//   - cmd.> (site → plumbing): the downlink delivers commands into the
//     site account, where its COMMANDS stream stores them and answers the
//     downlink's publish; site clients may not publish cmd.> themselves.
//   - svc.> and $SRV.> (site → plumbing): the seam for edge services.
//     Requests for local services arrive from the hubs in the plumbing
//     account and reach the responders of the site account; an edge
//     gateway of the services capability may take this path over.
func EdgeLocalServices() []EdgeLocalService {
	return []EdgeLocalService{
		{Subject: LocalTelemetry, Exporter: EdgePlumbingAccount, Importer: EdgeSiteAccount},
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
	// LocalImportHeaderRoom bounds the request-info header the edge's own
	// service import adds to a site message on its way into the buffer
	// (about 80 bytes); the forwarder drops it again.
	LocalImportHeaderRoom = 256
	// MaxCommandSize is the CLOUD COMMANDS stream's largest message: a
	// command the edge can still take with the downlink's headers.
	MaxCommandSize = HubMaxPayload - ForwarderHeaderRoom
	// EdgeMaxControlLine is the edge's longest protocol line (subject,
	// reply and sizes); the hubs take 4096, and the forwarder adds its
	// prefix and a reply subject to each message.
	EdgeMaxControlLine = 2048
)
