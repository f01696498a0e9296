package contract

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/nats-io/jwt/v2"
)

// Named services across the fabric. A cloud caller sends a request on
// edges.<edge>.svc.<service>.<endpoint> in CLOUD. CLOUD imports that
// subject ONCE, with the caller's identity shared, from the SVC account,
// where the hubs' service router answers it: the server stamps who called
// in the Nats-Request-Info header when the request crosses the import, so
// the router knows the caller from the server, not from the caller. The
// router forwards the request to the edge on svc.req.<edge>.<service>.<endpoint>
// in SVC, a stream export each edge account imports its own slice of; the
// edge's gateway answers on svc.rep.<edge>.<id>, a service export of SVC
// each edge account imports its own slice of. Only the router publishes
// in SVC, so the caller header it puts on a forwarded request is
// trustworthy at the edge; the edge's site clients may neither publish nor
// receive the tether.svc.> subjects.
const (
	// ServiceAccountName is the account of the hubs' service router.
	ServiceAccountName = "SVC"

	// svcCallExport is what CLOUD callers send requests on.
	svcCallExport = "edges.*.svc.>"
	// SvcPrefix starts the edge-local plumbing subjects of services.
	SvcPrefix = "tether.svc."
	// svcReqPrefix starts the forwarded requests (router to edge).
	svcReqPrefix = SvcPrefix + "req."
	// svcRepPrefix starts the gateway's answers (edge to router).
	svcRepPrefix = SvcPrefix + "rep."
	// svcOutPrefix starts an edge's own calls (edge to router):
	// tether.svc.out.<edge>.edges.<other>.svc.<service>.<endpoint> and
	// tether.svc.out.<edge>.cloud.svc.<service>.<endpoint>. The edge token
	// is set by the edge account's import, so it names the calling edge.
	svcOutPrefix = SvcPrefix + "out."

	// LocalEdgeCalls and LocalCloudCalls are what an edge's site clients
	// call other edges' and the cloud's services on; the edge's gateway
	// takes them and sends them on as tether.svc.out.<edge>.<subject>.
	LocalEdgeCalls  = "edges.*.svc.>"
	LocalCloudCalls = "cloud.svc.>"
	// CloudServices is where cloud services answer edges, in CLOUD:
	// cloud.svc.<service>.<endpoint>. The router reaches it through SVC's
	// import; the calling edge is in Tether-Caller, trustworthy when
	// Nats-Request-Info names the SVC account (stamped by the server).
	CloudServices = "cloud.svc.>"

	// ServiceList is the CLOUD subject on which the hubs answer the fleet's
	// service table as JSON (ServiceList): 'tether svc ls' for programs.
	// The request may carry a JSON ServiceListRequest.
	ServiceList = "tether.svc.ls"

	// HeaderCaller is the header in which the router tells the edge's
	// gateway who called (JSON Caller). The gateway trusts it only on
	// svc.req.<edge>.>, which only the router's account can publish.
	HeaderCaller = "Tether-Caller"
	// HeaderCallID identifies one call (router to gateway and back).
	HeaderCallID = "Tether-Call"
	// HeaderServiceError and HeaderServiceErrorCode are the nats.go micro
	// error headers: a failed call carries both.
	HeaderServiceError     = "Nats-Service-Error"
	HeaderServiceErrorCode = "Nats-Service-Error-Code"

	// AuditToken is the telemetry subject token under which an edge's
	// gateway buffers its audit records: local
	// telemetry._tether.audit.<service>.<endpoint>, forwarded exactly once
	// like any telemetry, landing in CLOUD as
	// edges.<edge>.telemetry._tether.audit.<service>.<endpoint>. Site
	// clients may not publish it.
	AuditToken = "_tether.audit"
	// LocalAuditPrefix is the edge-local subject prefix of audit records
	// (below ReservedTelemetryPrefix).
	LocalAuditPrefix = "telemetry." + AuditToken + "."
)

// Error codes of a failed call, in Nats-Service-Error-Code.
const (
	CodeDenied      = 403 // the policy does not let the caller call it
	CodeNoService   = 404 // the edge exposes no such service or endpoint
	CodeRateLimited = 429 // over the grant's rate or max in flight
	CodeServiceErr  = 500 // the service answered with an error
	CodeEdgeOffline = 503 // the edge is not linked (or not serving)
	CodeTimeout     = 504 // the edge's service did not answer in time
	CodeBadRequest  = 400 // malformed subject or names
)

// CloudServiceSubject is the CLOUD subject of an edge's service endpoint:
// edges.<edge>.svc.<service>.<endpoint>.
func CloudServiceSubject(edge, service, endpoint string) string {
	return "edges." + edge + ".svc." + service + "." + endpoint
}

// ServiceRequestSubject is where the router forwards a call to an edge
// (in SVC, and at the edge): tether.svc.req.<edge>.<service>.<endpoint>.
func ServiceRequestSubject(edge, service, endpoint string) string {
	return svcReqPrefix + edge + "." + service + "." + endpoint
}

// ServiceRequestAll is what an edge's gateway listens on.
func ServiceRequestAll(edge string) string { return svcReqPrefix + edge + ".>" }

// ServiceReplySubject is where an edge's gateway answers call id of the
// router routerID: tether.svc.rep.<edge>.<router>.<call>.
func ServiceReplySubject(edge, routerID, id string) string {
	return svcRepPrefix + edge + "." + routerID + "." + id
}

// ServiceReplyFor is what router routerID listens on for every edge's
// answers; the edge token of an answer is set by the edge account's
// import, so it cannot be forged by another edge.
func ServiceReplyFor(routerID string) string { return svcRepPrefix + "*." + routerID + ".*" }

// ServiceCallAll is what the router listens on for cloud callers.
const ServiceCallAll = svcCallExport

// ServiceOutAll is what the router listens on for edges' own calls.
const ServiceOutAll = svcOutPrefix + "*.>"

// ServiceOutSubject is where an edge's gateway sends a site client's call
// on local subject subj.
func ServiceOutSubject(edge, subj string) string { return svcOutPrefix + edge + "." + subj }

// LocalAuditSubject is the edge-local subject of an audit record.
func LocalAuditSubject(service, endpoint string) string {
	return LocalAuditPrefix + service + "." + endpoint
}

// CloudAuditFilter is the CLOUD telemetry subject filter for audit records
// ("*" for any edge, service or endpoint).
func CloudAuditFilter(edge, service string) string {
	if edge == "" {
		edge = "*"
	}
	s := "edges." + edge + ".telemetry." + AuditToken + "."
	if service == "" {
		return s + ">"
	}
	return s + service + ".*"
}

// ServiceExports are the SVC account's exports: the router's call subject
// (CLOUD imports it once), the forward slice (a stream: each edge account
// imports its own) and the answers (a service: each edge imports its own).
// None names an edge, so the SVC JWT does not grow with the fleet either.
func ServiceExports() jwt.Exports {
	return jwt.Exports{
		{Name: "svc-call", Subject: svcCallExport, Type: jwt.Service, ResponseType: jwt.ResponseTypeSingleton},
		{Name: "svc-forward", Subject: svcReqPrefix + "*.>", Type: jwt.Stream},
		{Name: "svc-answer", Subject: svcRepPrefix + "*.>", Type: jwt.Service},
		{Name: "svc-out", Subject: svcOutPrefix + "*.>", Type: jwt.Service, ResponseType: jwt.ResponseTypeSingleton},
	}
}

// ServiceImports are the SVC account's imports: the cloud services edges
// may call (one import whatever the fleet's size). It does not share the
// router's identity: a cloud service trusts Tether-Caller when the
// Nats-Request-Info account is SVC's, which the server stamps either way,
// and sharing would put the router user's whole JWT in every call.
func ServiceImports(cloudAccount string) jwt.Imports {
	return jwt.Imports{
		{Name: "cloud-services", Type: jwt.Service, Account: cloudAccount, Subject: CloudServices},
	}
}

// CloudServiceExports are added to the CLOUD account's exports: its
// services for edges, imported by SVC only (the router).
func CloudServiceExports() jwt.Exports {
	return jwt.Exports{
		{Name: "cloud-services", Subject: CloudServices, Type: jwt.Service, ResponseType: jwt.ResponseTypeSingleton},
		GatewayConfigExport(),
	}
}

// CloudServiceImports are the CLOUD account's imports of services: the
// call subject, with the caller's identity shared (the server stamps it).
// One import whatever the fleet's size.
func CloudServiceImports(svcAccount string) jwt.Imports {
	return jwt.Imports{
		{Name: "svc-call", Type: jwt.Service, Account: svcAccount, Subject: svcCallExport, Share: true},
	}
}

// EdgeServiceImports are an edge account's imports of services: its own
// slice of forwarded calls and of answers.
func EdgeServiceImports(edge, svcAccount string) jwt.Imports {
	return jwt.Imports{
		{Name: "svc-forward", Type: jwt.Stream, Account: svcAccount, Subject: jwt.Subject(svcReqPrefix + edge + ".>")},
		{Name: "svc-answer", Type: jwt.Service, Account: svcAccount, Subject: jwt.Subject(svcRepPrefix + edge + ".>")},
		{Name: "svc-out", Type: jwt.Service, Account: svcAccount, Subject: jwt.Subject(svcOutPrefix + edge + ".>")},
	}
}

// SiteServiceDeny are the subjects an edge's site clients may neither
// publish nor subscribe: the services plumbing, and (publish) the audit
// records.
func SiteServiceDeny() (pub, sub []string) {
	return []string{SvcPrefix + ">", LocalAuditPrefix + ">"}, []string{SvcPrefix + ">"}
}

// Caller is who made a call, as the router tells the edge's gateway.
type Caller struct {
	// Kind is "user" (a cloud user) or "edge" (another edge).
	Kind string `json:"kind"`
	// Name is the cloud user's name (its JWT's name) or the edge's name.
	Name string `json:"name"`
	// Account and User are the caller's account and user public keys.
	Account string `json:"account,omitempty"`
	User    string `json:"user,omitempty"`
	// Role is the name of the CLOUD scoped signing key that signed the
	// user's JWT, if any.
	Role string `json:"role,omitempty"`
}

// AuditRecord is one call as the serving edge's gateway recorded it.
type AuditRecord struct {
	Time     time.Time `json:"time"`
	Caller   Caller    `json:"caller"`
	Edge     string    `json:"edge"`
	Service  string    `json:"service"`
	Endpoint string    `json:"endpoint"`
	// Status is "ok" or "error"; Code and Error are set on an error.
	Status string `json:"status"`
	Code   int    `json:"code,omitempty"`
	Error  string `json:"error,omitempty"`
	// LatencyUS is the gateway's time from request to answer, in µs.
	LatencyUS int64 `json:"latency_us"`
	ReqBytes  int   `json:"req_bytes"`
	RespBytes int   `json:"resp_bytes"`
	// Call identifies the call (router to gateway).
	Call string `json:"call,omitempty"`
}

// An audit message (local telemetry._tether.audit.<service>.<endpoint>,
// CLOUD edges.<edge>.telemetry._tether.audit.<service>.<endpoint>) holds
// one or more records of that endpoint's calls, each the JSON of an
// AuditRecord on its own line: the gateway writes them in batches.

// EncodeAuditRecord is rec's line in an audit message.
func EncodeAuditRecord(rec *AuditRecord) ([]byte, error) {
	b, err := json.Marshal(rec)
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// DecodeAuditRecords reads the records of one audit message.
func DecodeAuditRecords(data []byte) ([]AuditRecord, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	var out []AuditRecord
	for {
		var r AuditRecord
		err := dec.Decode(&r)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, fmt.Errorf("audit record %d: %w", len(out)+1, err)
		}
		out = append(out, r)
	}
}

// EdgeService is one service an edge exposes, as it reports it.
type EdgeService struct {
	Name        string   `json:"name"`
	Version     string   `json:"version,omitempty"`
	Description string   `json:"description,omitempty"`
	Endpoints   []string `json:"endpoints"`
	Instances   int      `json:"instances"`
}

// ServiceListRequest narrows a ServiceList request.
type ServiceListRequest struct {
	Edge string `json:"edge,omitempty"`
}

// ServiceEntry is one row of the fleet's service table.
type ServiceEntry struct {
	Edge string `json:"edge"`
	EdgeService
	Online   bool      `json:"online"`
	LastSeen time.Time `json:"last_seen,omitzero"`
}

// ServiceListReply answers ServiceList.
type ServiceListReply struct {
	Services []ServiceEntry `json:"services"`
	Error    string         `json:"error,omitempty"`
}

// How an edge gets its gateway configuration (the JSON of a
// policy.Gateway): 'tether policy apply' keeps every edge's in the CLOUD
// key-value bucket GatewayBucket (key: the edge's name) and pushes the
// changed ones to the linked edges over their own links
// (GatewayControlSubject). An edge that was not linked asks for its own
// when its link comes up: LocalGatewayFetch at the edge is imported from
// CLOUD as a JetStream direct get of its own key only, answered by the
// hubs' JetStream (no per-edge consumer, timer or poll on the hubs).
const (
	// GatewayBucket is the CLOUD key-value bucket of the edges' gateway
	// configurations.
	GatewayBucket = "TETHER_GATEWAYS"
	// LocalGatewayFetch is the edge-local subject on which the edge's
	// gateway asks for its configuration (an empty request; the answer is
	// the bucket's last value for the edge, or a 404 status).
	LocalGatewayFetch = SvcPrefix + "gateway"
	gatewayGetPrefix  = "$JS.API.DIRECT.GET.KV_" + GatewayBucket + ".$KV." + GatewayBucket + "."
)

// GatewayConfigExport is the CLOUD export of the direct gets of the
// gateway bucket's keys; each edge account imports its own key only. A
// wildcard over the edge name: the CLOUD JWT does not grow with the fleet.
func GatewayConfigExport() *jwt.Export {
	return &jwt.Export{Name: "gateway-config", Subject: gatewayGetPrefix + "*", Type: jwt.Service, ResponseType: jwt.ResponseTypeSingleton}
}

// EdgeGatewayImport is an edge account's import of its own gateway
// configuration: LocalGatewayFetch reaches the direct get of its key.
func EdgeGatewayImport(edge, cloudAccount string) *jwt.Import {
	return &jwt.Import{Name: "gateway-config", Type: jwt.Service, Account: cloudAccount,
		Subject: jwt.Subject(gatewayGetPrefix + edge), LocalSubject: jwt.RenamingSubject(LocalGatewayFetch)}
}

// GatewayControlSubject is the control subject on which the operator's
// tools hand an edge its gateway configuration (the JSON of a
// policy.Gateway), over the edge's own link like key rotation: only a
// control user of the edge's account, issued by the store, can send it.
// The edge keeps it on its disk and answers GatewayPushReply.
const GatewayControlSubject = ControlPrefix + ".GATEWAY.SET"

// HeaderGatewayRevision carries, on a GatewayControlSubject push, the
// bucket revision of the configuration pushed; a fetch's answer carries it
// as the direct get's Nats-Sequence. An edge installs a configuration only
// when its revision is not older than the one in force, so a fetch answered
// before an apply and delivered after that apply's push cannot undo it.
const HeaderGatewayRevision = "Tether-Gateway-Revision"

// GatewayPushReply answers a GatewayControlSubject request.
type GatewayPushReply struct {
	Applied bool     `json:"applied"`
	Exposed []string `json:"exposed,omitempty"`
	Grants  int      `json:"grants"`
	Error   string   `json:"error,omitempty"`
}
