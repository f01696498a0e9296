package contract

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
	// UplinkStatus is the local subject on which the edge's forwarder
	// publishes its periodic status report (a core publish, not buffered);
	// it reaches CLOUD as edges.<edge>.status.
	UplinkStatus = UplinkPrefix + "status"
	// UplinkInbox is the inbox prefix of the edge's forwarder and
	// downlink: the cloud's PubAcks and queued commands come back on it.
	UplinkInbox = "_TETHER_INBOX"

	// CommandsStream is the CLOUD stream that queues commands for edges.
	CommandsStream = "COMMANDS"
	// DownlinkNext is the edge-local subject on which the edge's downlink
	// asks its own command consumer in the cloud for the next commands.
	DownlinkNext = DownlinkPrefix + "next"

	// EnrollSubject is the edge-local subject on which a device holding an
	// enrollment token asks for its leaf user; the edge account imports it
	// from CLOUD as $TETHER.ENROLL.<edge>.
	EnrollSubject = "$TETHER.ENROLL"
	// EnrollInbox is the inbox prefix of an enrolling device: the only
	// subjects its enroll user may receive, so a token holder never sees
	// replies meant for the edge's running leaf (_TETHER_INBOX.<nuid>...).
	EnrollInbox = UplinkInbox + ".enroll"

	// ControlPrefix starts the edge-local control subjects ($TETHER.CTL.>)
	// that an edge serves over its link to the operator's tools (key
	// rotation). Only a short-lived control user of the edge's own account,
	// issued by the operator's store, may publish on them at the hub.
	ControlPrefix = "$TETHER.CTL"

	// UplinkHighWater is the edge-local subject on which the forwarder asks
	// the cloud how far its telemetry got (edges.<edge>.hwm in CLOUD).
	UplinkHighWater = UplinkPrefix + "hwm"
	// Headers the forwarder puts on every message: the buffer incarnation
	// (origin) and the buffer sequence.
	HeaderOrigin = "Tether-Origin"
	HeaderSeq    = "Tether-Seq"

	cloudEnrollExport    = EnrollSubject + ".*"
	cloudTelemetryExport = "edges.*.telemetry.>"
	cloudHighWaterExport = "edges.*.hwm"
	cloudStatusExport    = "edges.*.status"
	cloudCommandsNext    = "$JS.API.CONSUMER.MSG.NEXT." + CommandsStream + ".*"
	cloudCommandsAck     = "$JS.ACK." + CommandsStream + ".*.>"
	// commandsAckPrefix starts the ack subjects of every edge's command
	// consumer; an edge account imports only its own.
	commandsAckPrefix = "$JS.ACK." + CommandsStream + "."
)

// CloudTelemetrySubject returns the cloud subject that receives an edge's
// telemetry: edges.<edge>.telemetry.>.
func CloudTelemetrySubject(edge string) string { return "edges." + edge + ".telemetry.>" }

// CloudCommandSubject returns the cloud subject whose messages reach an
// edge's local cmd.>: edges.<edge>.cmd.>.
func CloudCommandSubject(edge string) string { return "edges." + edge + ".cmd.>" }

// CloudEnrollSubject returns the CLOUD subject on which the registrar
// receives an edge's enrollment requests: $TETHER.ENROLL.<edge>. The edge
// name in it is trustworthy: the mapping is in the operator-signed edge
// account JWT.
func CloudEnrollSubject(edge string) string { return EnrollSubject + "." + edge }

// CloudEnrollAll is what the registrar subscribes to: every edge's requests.
const CloudEnrollAll = cloudEnrollExport

// CloudStatusSubject returns the cloud subject that receives an edge's
// status reports: edges.<edge>.status.
func CloudStatusSubject(edge string) string { return "edges." + edge + ".status" }

// CloudHighWaterSubject is the CLOUD subject on which the hubs tell an edge
// how far its telemetry got: edges.<edge>.hwm.
func CloudHighWaterSubject(edge string) string { return "edges." + edge + ".hwm" }

// CommandConsumer is the name of an edge's durable consumer on the CLOUD
// COMMANDS stream.
func CommandConsumer(edge string) string { return "cmd_" + edge }

// CloudExports returns the CLOUD account's exports. They are wildcard
// exports over the edge name, so the CLOUD JWT does not grow per edge; each
// edge account imports only its own slice, and only the operator can sign an
// account JWT, so an edge cannot widen its slice.
func CloudExports() jwt.Exports {
	return jwt.Exports{
		{Name: "edge-telemetry", Subject: cloudTelemetryExport, Type: jwt.Service, ResponseType: jwt.ResponseTypeSingleton},
		// The hubs answer an edge with the last (origin, seq) of its
		// telemetry that the cloud stores: its high-water mark.
		{Name: "edge-high-water", Subject: cloudHighWaterExport, Type: jwt.Service, ResponseType: jwt.ResponseTypeSingleton},
		// Commands are queued in the CLOUD COMMANDS stream
		// (edges.*.cmd.>); each edge pulls from its own durable consumer
		// and acks what it delivered locally.
		{Name: "edge-commands-next", Subject: cloudCommandsNext, Type: jwt.Service, ResponseType: jwt.ResponseTypeStream},
		{Name: "edge-commands-ack", Subject: cloudCommandsAck, Type: jwt.Service},
		// Each edge's last status report is kept in the CLOUD stream
		// EDGE_STATUS (edges.*.status) for the fleet view.
		{Name: "edge-status", Subject: cloudStatusExport, Type: jwt.Service},
		// Enrollment: the hubs' registrar answers every edge's requests.
		{Name: "edge-enroll", Subject: cloudEnrollExport, Type: jwt.Service, ResponseType: jwt.ResponseTypeSingleton},
	}
}

// EdgeImports returns the imports of an edge account: the forwarder's
// tether.up.telemetry.> reaches CLOUD as edges.<edge>.telemetry.> (the
// CLOUD stream's PubAck comes back as the reply); the downlink's
// tether.down.next pulls from the edge's own command consumer, and acks go
// to that consumer's ack subjects only; the forwarder's status reports on
// tether.up.status reach CLOUD as edges.<edge>.status; $TETHER.ENROLL
// reaches the registrar as $TETHER.ENROLL.<edge>, with the requestor's
// identity shared (the hub adds it in the Nats-Request-Info header). Only
// an enroll user may publish it: it is not in LeafPermissions.
func EdgeImports(edge, cloudAccount string) jwt.Imports {
	return jwt.Imports{
		{Name: "telemetry", Type: jwt.Service, Account: cloudAccount,
			Subject: jwt.Subject(CloudTelemetrySubject(edge)), LocalSubject: jwt.RenamingSubject(uplinkTelemetry)},
		{Name: "high-water", Type: jwt.Service, Account: cloudAccount,
			Subject: jwt.Subject(CloudHighWaterSubject(edge)), LocalSubject: jwt.RenamingSubject(UplinkHighWater)},
		{Name: "commands-next", Type: jwt.Service, Account: cloudAccount,
			Subject:      jwt.Subject("$JS.API.CONSUMER.MSG.NEXT." + CommandsStream + "." + CommandConsumer(edge)),
			LocalSubject: jwt.RenamingSubject(DownlinkNext)},
		{Name: "commands-ack", Type: jwt.Service, Account: cloudAccount,
			Subject: jwt.Subject(commandsAckPrefix + CommandConsumer(edge) + ".>")},
		{Name: "status", Type: jwt.Service, Account: cloudAccount,
			Subject: jwt.Subject(CloudStatusSubject(edge)), LocalSubject: jwt.RenamingSubject(UplinkStatus)},
		{Name: "enroll", Type: jwt.Service, Account: cloudAccount,
			Subject: jwt.Subject(CloudEnrollSubject(edge)), LocalSubject: jwt.RenamingSubject(EnrollSubject), Share: true},
	}
}

// LeafPermissions returns the permissions of an edge's leaf user, from the
// edge's point of view: Pub is what the edge may send to the hub, Sub what
// the hub may deliver to the edge.
//
// Pub: tether.up.telemetry.> (the forwarder's data path; raw telemetry.>
// never crosses, it is buffered first), tether.up.status (the edge's
// periodic status report for the fleet view), tether.down.next and
// $JS.ACK.COMMANDS.> (the downlink pulling and acking its queued commands;
// the account imports only its own consumer's), _INBOX.> (replies of edge
// services to callers inside the edge's own account). Sub: svc.>
// (requests to edge services), _TETHER_INBOX.> (PubAcks and commands for
// the forwarder and downlink), $TETHER.CTL.> (control requests such as key
// rotation, answered on _INBOX.>). Raw cmd.> does not cross: commands come
// through the queue. tether.svc.rep.> (pub) and tether.svc.req.> (sub)
// carry calls of the edge's services through the hubs' router
// (services.go); the edge's own calls (tether.svc.out.<edge>.…) are only
// what the policy grants it (LeafPermissionsFor).
func LeafPermissions() jwt.Permissions {
	var p jwt.Permissions
	p.Pub.Allow.Add(uplinkTelemetry, UplinkStatus, UplinkHighWater, DownlinkNext, commandsAckPrefix+">", "_INBOX.>")
	p.Sub.Allow.Add(LocalServices, UplinkInbox+".>", ControlPrefix+".>")
	// Named services (services.go): the gateway answers forwarded calls
	// and asks for its configuration when its link comes up.
	p.Pub.Allow.Add(svcRepPrefix+">", LocalGatewayFetch)
	p.Sub.Allow.Add(svcReqPrefix + ">")
	return p
}

// ControlPermissions are those of the operator's short-lived control user
// in an edge account: it may send control requests to the edge and receive
// the answers, nothing else.
func ControlPermissions() jwt.Permissions {
	var p jwt.Permissions
	p.Pub.Allow.Add(ControlPrefix + ".>")
	p.Sub.Allow.Add("_INBOX.>")
	return p
}

// LeafConnectionTypes are the only connection types an edge's leaf user may
// use: a TLS leafnode connection or a WebSocket (TLS) one.
func LeafConnectionTypes() jwt.StringList {
	return jwt.StringList{jwt.ConnectionTypeLeafnode, jwt.ConnectionTypeLeafnodeWS}
}

// EnrollPermissions returns the permissions of an edge's enroll user (the
// identity inside an enrollment token), from the edge's point of view: it
// may send only $TETHER.ENROLL and receive only replies on EnrollInbox.
func EnrollPermissions() jwt.Permissions {
	var p jwt.Permissions
	p.Pub.Allow.Add(EnrollSubject)
	p.Sub.Allow.Add(EnrollInbox + ".>")
	return p
}

// IsEnrollUser reports whether uc is an enroll user: its permissions are
// EnrollPermissions (it may send $TETHER.ENROLL and nothing else).
func IsEnrollUser(uc *jwt.UserClaims) bool {
	allow := uc.Pub.Allow
	return len(allow) == 1 && allow[0] == EnrollSubject
}
