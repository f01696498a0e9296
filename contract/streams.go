package contract

import "strings"

// Names of the JetStream domains, streams and subjects both ends use.
const (
	// CloudDomain is the hubs' JetStream domain.
	CloudDomain = "hub"
	// TelemetryStream is the CLOUD stream holding every edge's telemetry
	// as edges.<edge>.telemetry.> (CloudTelemetryAll).
	TelemetryStream = "TELEMETRY"
	// EdgeStatusStream is the CLOUD stream holding the last status report
	// of every edge as edges.<edge>.status (CloudStatusAll).
	EdgeStatusStream = "EDGE_STATUS"
	// CloudTelemetryAll, CloudCommandsAll and CloudStatusAll are every
	// edge's telemetry, command and status subjects in CLOUD.
	CloudTelemetryAll = cloudTelemetryExport
	CloudCommandsAll  = "edges.*.cmd.>"
	CloudStatusAll    = cloudStatusExport

	// EdgeBufferStream is the edge-local stream that buffers telemetry.>
	// on the edge's disk until the cloud confirmed it.
	EdgeBufferStream = "TELEMETRY"
	// EdgeCommandsStream is the edge-local stream of delivered commands
	// (cmd.>).
	EdgeCommandsStream = "COMMANDS"
	// LeafStatusSubject is the edge-local subject on which 'tether leaf
	// status' asks the running edge for its state.
	LeafStatusSubject = "$TETHER.LEAF.STATUS"
	// DownlinkPrefix starts the edge-local subjects of the downlink
	// (DownlinkNext).
	DownlinkPrefix = "tether.down."

	// HeaderEdge names the edge on every forwarded telemetry message.
	HeaderEdge = "Tether-Edge"
	// HeaderCloudSeq carries a delivered command's sequence in the CLOUD
	// COMMANDS stream, on the copy the edge stores locally.
	HeaderCloudSeq = "Tether-Cloud-Seq"
)

// EdgeDomain returns the JetStream domain of an edge: edge-<name>.
func EdgeDomain(edge string) string { return "edge-" + edge }

// CloudEdgeSubjects returns every CLOUD subject of one edge:
// edges.<edge>.>.
func CloudEdgeSubjects(edge string) string { return cloudEdgePrefix + edge + ".>" }

// CloudCommandPrefix returns the prefix of an edge's command subjects in
// CLOUD (edges.<edge>.); the rest of the subject is the local one (cmd.…).
func CloudCommandPrefix(edge string) string { return cloudEdgePrefix + edge + "." }

const cloudEdgePrefix = "edges."

// EdgeOfSubject returns the edge named by a CLOUD subject edges.<edge>.…,
// or "" for another subject.
func EdgeOfSubject(subj string) string {
	rest, ok := strings.CutPrefix(subj, cloudEdgePrefix)
	if !ok {
		return ""
	}
	edge, _, ok := strings.Cut(rest, ".")
	if !ok {
		return ""
	}
	return edge
}
