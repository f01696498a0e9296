package policy

import (
	"github.com/nats-io/jwt/v2"
)

// Subjects of the data-path contract. Local subjects are what clients at an
// edge use; cloud subjects are what cloud applications use.
const (
	LocalTelemetry = "telemetry.>"
	LocalCommands  = "cmd.>"
	LocalServices  = "svc.>"

	// UplinkPrefix is put in front of a buffered telemetry subject by the
	// edge's forwarder; tether.up.telemetry.> is the only telemetry subject
	// that crosses the link, so nothing bypasses the edge's disk buffer.
	UplinkPrefix    = "tether.up."
	uplinkTelemetry = UplinkPrefix + LocalTelemetry
	// UplinkInbox is the inbox prefix of the edge's forwarder: the cloud's
	// PubAcks come back on it.
	UplinkInbox = "_TETHER_INBOX"

	cloudTelemetryExport = "edges.*.telemetry.>"
	cloudCommandsExport  = "edges.*.cmd.>"
)

// CloudTelemetrySubject returns the cloud subject that receives an edge's
// telemetry: edges.<edge>.telemetry.>.
func CloudTelemetrySubject(edge string) string { return "edges." + edge + ".telemetry.>" }

// CloudCommandSubject returns the cloud subject whose messages reach an
// edge's local cmd.>: edges.<edge>.cmd.>.
func CloudCommandSubject(edge string) string { return "edges." + edge + ".cmd.>" }

// CloudExports returns the CLOUD account's exports. They are wildcard
// exports over the edge name, so the CLOUD JWT does not grow per edge; each
// edge account imports only its own slice, and only the operator can sign an
// account JWT, so an edge cannot widen its slice.
func CloudExports() jwt.Exports {
	return jwt.Exports{
		{Name: "edge-telemetry", Subject: cloudTelemetryExport, Type: jwt.Service, ResponseType: jwt.ResponseTypeSingleton},
		{Name: "edge-commands", Subject: cloudCommandsExport, Type: jwt.Stream},
	}
}

// EdgeImports returns the imports of an edge account: the forwarder's
// tether.up.telemetry.> reaches CLOUD as edges.<edge>.telemetry.> (the
// CLOUD stream's PubAck comes back as the reply), and CLOUD's
// edges.<edge>.cmd.> arrives as the local cmd.>.
func EdgeImports(edge, cloudAccount string) jwt.Imports {
	return jwt.Imports{
		{Name: "telemetry", Type: jwt.Service, Account: cloudAccount,
			Subject: jwt.Subject(CloudTelemetrySubject(edge)), LocalSubject: jwt.RenamingSubject(uplinkTelemetry)},
		{Name: "commands", Type: jwt.Stream, Account: cloudAccount,
			Subject: jwt.Subject(CloudCommandSubject(edge)), LocalSubject: jwt.RenamingSubject(LocalCommands)},
	}
}

// LeafPermissions returns the permissions of an edge's leaf user, from the
// edge's point of view: Pub is what the edge may send to the hub, Sub what
// the hub may deliver to the edge.
//
// Pub: tether.up.telemetry.> (the forwarder's data path; raw telemetry.>
// never crosses, it is buffered first), _INBOX.> (replies of edge services
// to callers inside the edge's own account). Sub: cmd.> (commands), svc.>
// (requests to edge services), _TETHER_INBOX.> (PubAcks for the forwarder).
func LeafPermissions() jwt.Permissions {
	var p jwt.Permissions
	p.Pub.Allow.Add(uplinkTelemetry, "_INBOX.>")
	p.Sub.Allow.Add(LocalCommands, LocalServices, UplinkInbox+".>")
	return p
}

// LeafConnectionTypes are the only connection types an edge's leaf user may
// use: a TLS leafnode connection or a WebSocket (TLS) one.
func LeafConnectionTypes() jwt.StringList {
	return jwt.StringList{jwt.ConnectionTypeLeafnode, jwt.ConnectionTypeLeafnodeWS}
}
