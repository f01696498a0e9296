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
)

// CloudCommandSubjectFor returns the cloud subject of command rel (relative
// to the edge's cmd., e.g. "reboot" or "config.>") for edge ("*" for every
// edge): edges.<edge>.cmd.<rel>.
func CloudCommandSubjectFor(edge, rel string) string { return "edges." + edge + ".cmd." + rel }

// CloudServiceCallSubject returns the CLOUD subject a cloud principal
// publishes to call every endpoint of service on edge ("*" for every edge):
// edges.<edge>.svc.<service>.>. The hubs' router answers it (services.go).
func CloudServiceCallSubject(edge, service string) string {
	return "edges." + edge + ".svc." + service + ".>"
}

// CloudServiceCallPermissions are what a cloud principal (user, or
// UserNameTemplate) granted calls to services needs: publish each of
// subjects (CloudServiceCallSubject), ask the fleet's service table
// (ServiceList) and receive the answers on its own inbox.
func CloudServiceCallPermissions(user string, subjects []string) jwt.Permissions {
	var p jwt.Permissions
	p.Pub.Allow.Add(sortedCopy(subjects)...)
	p.Pub.Allow.Add(ServiceList)
	p.Sub.Allow.Add(CloudInbox(user))
	return p
}

// CloudServeSubject returns the CLOUD subject on which a cloud service
// answers edges' calls to it: cloud.svc.<service>.> (the router reaches
// it through the SVC account's import; the calling edge is in the
// Tether-Caller header).
func CloudServeSubject(service string) string { return "cloud.svc." + service + ".>" }

// EdgeOutCloudSubject returns what edge's leaf must be allowed to publish
// for its site clients to call the cloud service service through the
// router: tether.svc.out.<edge>.cloud.svc.<service>.>.
func EdgeOutCloudSubject(edge, service string) string {
	return ServiceOutSubject(edge, CloudServeSubject(service))
}

// EdgeOutPeerSubject returns what edge's leaf must be allowed to publish
// for its site clients to call the services of the linked edge peer
// through the router: tether.svc.out.<edge>.edges.<peer>.svc.>.
func EdgeOutPeerSubject(edge, peer string) string {
	return ServiceOutSubject(edge, "edges."+peer+".svc.>")
}

// LeafPermissionsFor returns LeafPermissions widened by what the policy
// grants edge: calling the named cloud services and the services of the
// named linked edges, each through the hubs' router. The hub enforces the
// leaf user's publish permissions and propagates no interest beyond them,
// so a call the policy does not grant is answered "no responders" at the
// edge at once. With no calls and no peers it equals LeafPermissions.
func LeafPermissionsFor(edge string, calls, peers []string) jwt.Permissions {
	p := LeafPermissions()
	for _, s := range sortedCopy(calls) {
		p.Pub.Allow.Add(EdgeOutCloudSubject(edge, s))
	}
	for _, e := range sortedCopy(peers) {
		p.Pub.Allow.Add(EdgeOutPeerSubject(edge, e))
	}
	return p
}

// CloudTelemetryReadPermissions returns what the cloud user named user (or
// UserNameTemplate) needs to read the telemetry of edges, live and from the
// TELEMETRY stream through its own consumers. An empty edges (or "*")
// means every edge, as the reader role. Narrowed to named edges, consumers
// must filter on one of those edges' subjects (the filter is in the
// consumer-create subject) and the stream's direct and message gets, which
// read any edge, are not allowed.
//
// Consumers: the user may create, update, read, pull from, ack on and
// delete exactly the names CloudConsumerNames(user), ephemeral or durable,
// through the consumer-create subject that names the consumer
// ($JS.API.CONSUMER.CREATE.TELEMETRY.<name>[.<filter>]). The legacy
// forms are not allowed: the ephemeral create
// ($JS.API.CONSUMER.CREATE.TELEMETRY) takes the name from its payload, so
// it could update another application's consumer, and DURABLE.CREATE is
// not needed by any client of a 2.9+ server. Replies come only on
// CloudInboxPrefix(user).
func CloudTelemetryReadPermissions(user string, edges []string) jwt.Permissions {
	all := len(edges) == 0
	for _, e := range edges {
		all = all || e == "*"
	}
	var p jwt.Permissions
	js := "$JS.API."
	p.Pub.Allow.Add(js+"INFO", js+"STREAM.INFO."+telemetryStream)
	if all {
		p.Pub.Allow.Add(
			js+"STREAM.MSG.GET."+telemetryStream,
			js+"DIRECT.GET."+telemetryStream,
			js+"DIRECT.GET."+telemetryStream+".>",
		)
	}
	for _, c := range CloudConsumerNames(user) {
		p.Pub.Allow.Add(
			js+"CONSUMER.INFO."+telemetryStream+"."+c,
			js+"CONSUMER.DELETE."+telemetryStream+"."+c,
			js+"CONSUMER.MSG.NEXT."+telemetryStream+"."+c,
			"$JS.ACK."+telemetryStream+"."+c+".>",
			"$JS.FC."+telemetryStream+"."+c+".>",
		)
		// Only the consumer-create subject that names the consumer (and
		// carries its filter: nats.go uses it for ephemeral and durable
		// consumers alike); not the legacy DURABLE.CREATE form.
		if all {
			p.Pub.Allow.Add(
				js+"CONSUMER.CREATE."+telemetryStream+"."+c,
				js+"CONSUMER.CREATE."+telemetryStream+"."+c+".>",
			)
			continue
		}
		for _, e := range sortedCopy(edges) {
			p.Pub.Allow.Add(js + "CONSUMER.CREATE." + telemetryStream + "." + c + "." + CloudTelemetrySubject(e))
		}
	}
	if all {
		p.Sub.Allow.Add(cloudTelemetryExport)
	} else {
		for _, e := range sortedCopy(edges) {
			p.Sub.Allow.Add(CloudTelemetrySubject(e))
		}
	}
	p.Sub.Allow.Add(CloudInbox(user))
	return p
}

// CloudCommandBasePermissions are what a cloud user (or UserNameTemplate)
// that may send commands needs besides the command subjects: the JetStream
// info calls of a publisher and its own reply inbox.
func CloudCommandBasePermissions(user string) jwt.Permissions {
	var p jwt.Permissions
	p.Pub.Allow.Add("$JS.API.INFO", "$JS.API.STREAM.INFO."+CommandsStream)
	p.Sub.Allow.Add(CloudInbox(user))
	return p
}

// CloudServePermissions are what a cloud service answering edges' calls to
// service needs: receive cloud.svc.<service>.> (and reply once).
func CloudServePermissions(service string) jwt.Permissions {
	var p jwt.Permissions
	p.Sub.Allow.Add(CloudServeSubject(service))
	p.Pub.Allow.Add("_INBOX.>")
	p.Resp = &jwt.ResponsePermission{MaxMsgs: 1}
	return p
}

func sortedCopy(in []string) []string {
	out := append([]string(nil), in...)
	sort.Strings(out)
	return out
}
