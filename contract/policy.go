package contract

import (
	"sort"

	"github.com/nats-io/jwt/v2"
)

// Subjects and permissions the declarative policy (package policy) compiles
// grants to. The policy never spells a subject itself: it names edges,
// command subjects relative to an edge's cmd., and service names, and this
// file turns them into the edge's own slice of the wire.
const (
	// LeafScopeRole is the role of an edge account's scoped signing key that
	// signs its leaf users (the same value as accounts.LeafRole).
	LeafScopeRole = "leaf"

	// EdgeCallPrefix starts the edge-local subjects on which edge clients
	// call a cloud service: cloud.<service>.<endpoint...>.
	EdgeCallPrefix = "cloud."
	// EdgePeerPrefix starts the edge-local subjects on which edge clients
	// call a linked edge's services: peers.<edge>.svc.<...>.
	EdgePeerPrefix = "peers."

	cloudCallExport = "edges.*.call.>"
	serviceReplies  = "_R_.>"
)

// CloudCommandSubjectFor returns the cloud subject of command rel (relative
// to the edge's cmd., e.g. "reboot" or "config.>") for edge ("*" for every
// edge): edges.<edge>.cmd.<rel>.
func CloudCommandSubjectFor(edge, rel string) string { return "edges." + edge + ".cmd." + rel }

// CloudCallSubject returns the CLOUD subject on which a cloud service
// receives edge's calls: edges.<edge>.call.<service>.> ("*" for every edge).
func CloudCallSubject(edge, service string) string {
	return "edges." + edge + ".call." + service + ".>"
}

// EdgeCallSubject returns the edge-local subject on which the edge's clients
// call a cloud service: cloud.<service>.>.
func EdgeCallSubject(service string) string { return EdgeCallPrefix + service + ".>" }

// EdgePeerSubject returns the edge-local subject on which the edge's
// clients call a linked edge's services: peers.<peer>.svc.>.
func EdgePeerSubject(peer string) string { return EdgePeerPrefix + peer + "." + LocalServices }

// CloudCallExport is the CLOUD export through which edges reach cloud
// services. It is a wildcard over the edge name, so it does not grow with
// the fleet; only an edge account whose JWT imports a service (signed by the
// operator from the policy) can call it.
func CloudCallExport() jwt.Export {
	return jwt.Export{Name: "edge-calls", Subject: cloudCallExport, Type: jwt.Service,
		ResponseType: jwt.ResponseTypeSingleton, AllowTrace: false}
}

// EdgeCallImport is the import that lets edge's clients call a cloud
// service: cloud.<service>.> at the edge reaches CLOUD as
// edges.<edge>.call.<service>.>, with the caller's identity shared.
func EdgeCallImport(edge, service, cloudAccount string) *jwt.Import {
	return &jwt.Import{Name: "call-" + service, Type: jwt.Service, Account: cloudAccount,
		Subject:      jwt.Subject(CloudCallSubject(edge, service)),
		LocalSubject: jwt.RenamingSubject(EdgeCallSubject(service)), Share: true}
}

// EdgeServicesExport is the export of an edge account's services (svc.>)
// to the edges linked to it. Only accounts whose operator-signed JWT imports
// it (both edges allowed the link in the policy) reach it.
func EdgeServicesExport() *jwt.Export {
	return &jwt.Export{Name: "linked-services", Subject: jwt.Subject(LocalServices), Type: jwt.Service,
		ResponseType: jwt.ResponseTypeSingleton}
}

// EdgePeerImport is the import that lets an edge's clients call peer's
// services: peers.<peer>.svc.> at the edge reaches the peer's svc.>, with
// the caller's identity shared.
func EdgePeerImport(peer, peerAccount string) *jwt.Import {
	return &jwt.Import{Name: "peer-" + peer, Type: jwt.Service, Account: peerAccount,
		Subject: jwt.Subject(LocalServices), LocalSubject: jwt.RenamingSubject(EdgePeerSubject(peer)), Share: true}
}

// LeafPermissionsWith returns LeafPermissions widened by what the policy
// grants the edge: calling the named cloud services and the named linked
// edges (replies come back on _INBOX.>, the edge's own account's inboxes;
// with peers the edge answers their calls on _R_.>).
// With no calls and no peers it equals LeafPermissions.
func LeafPermissionsWith(calls, peers []string) jwt.Permissions {
	p := LeafPermissions()
	if len(calls) == 0 && len(peers) == 0 {
		return p
	}
	for _, s := range sortedCopy(calls) {
		p.Pub.Allow.Add(EdgeCallSubject(s))
	}
	for _, e := range sortedCopy(peers) {
		p.Pub.Allow.Add(EdgePeerSubject(e))
	}
	if len(peers) > 0 {
		// Answers to a linked edge's calls go to the reply subjects the
		// import made in this account (_R_.>).
		p.Pub.Allow.Add(serviceReplies)
	}
	p.Sub.Allow.Add("_INBOX.>")
	return p
}

// CloudTelemetryReadPermissions returns what a cloud user needs to read the
// telemetry of edges, live and from the TELEMETRY stream through its own
// consumers. An empty edges (or "*") means every edge, as the reader role.
// Narrowed to named edges, consumers must filter on one of those edges'
// subjects (the filter is in the consumer-create subject) and the stream's
// direct and message gets, which read any edge, are not allowed.
func CloudTelemetryReadPermissions(edges []string) jwt.Permissions {
	all := len(edges) == 0
	for _, e := range edges {
		all = all || e == "*"
	}
	if all {
		p, _ := CloudRolePermissions(RoleReader, nil)
		return p
	}
	var p jwt.Permissions
	js := "$JS.API."
	p.Pub.Allow.Add(
		js+"INFO",
		js+"STREAM.INFO."+telemetryStream,
		js+"CONSUMER.INFO."+telemetryStream+".>",
		js+"CONSUMER.DELETE."+telemetryStream+".>",
		js+"CONSUMER.MSG.NEXT."+telemetryStream+".>",
		"$JS.ACK."+telemetryStream+".>",
		"$JS.FC."+telemetryStream+".>",
	)
	for _, e := range sortedCopy(edges) {
		// The consumer-create subject carries the filter (nats.go uses it
		// for ephemeral and durable consumers alike); the legacy
		// DURABLE.CREATE form does not, so it is not allowed.
		p.Pub.Allow.Add(js + "CONSUMER.CREATE." + telemetryStream + ".*." + CloudTelemetrySubject(e))
		p.Sub.Allow.Add(CloudTelemetrySubject(e))
	}
	p.Sub.Allow.Add("_INBOX.>")
	return p
}

// CloudCommandBasePermissions are what a cloud user that may send commands
// needs besides the command subjects: the JetStream info calls of a
// publisher and its reply inbox.
func CloudCommandBasePermissions() jwt.Permissions {
	var p jwt.Permissions
	p.Pub.Allow.Add("$JS.API.INFO", "$JS.API.STREAM.INFO."+CommandsStream)
	p.Sub.Allow.Add("_INBOX.>")
	return p
}

// CloudServePermissions are what a cloud service answering edges' calls to
// service needs: receive edges.*.call.<service>.> (and reply).
func CloudServePermissions(service string) jwt.Permissions {
	var p jwt.Permissions
	p.Sub.Allow.Add(CloudCallSubject("*", service))
	p.Pub.Allow.Add("_INBOX.>")
	p.Resp = &jwt.ResponsePermission{MaxMsgs: 1}
	return p
}

func sortedCopy(in []string) []string {
	out := append([]string(nil), in...)
	sort.Strings(out)
	return out
}
