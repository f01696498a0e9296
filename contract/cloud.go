package contract

import (
	"fmt"
	"sort"
	"strings"

	"github.com/nats-io/jwt/v2"
)

// Roles of cloud users ('tether user add NAME --role ROLE').
const (
	// RoleAdmin may do anything inside the CLOUD account (streams,
	// consumers, every subject); it cannot reach edges' accounts or $SYS.
	RoleAdmin = "admin"
	// RoleReader reads telemetry: live on edges.*.telemetry.> and from the
	// TELEMETRY stream through its own consumers; it cannot publish data,
	// send commands or change streams.
	RoleReader = "reader"
	// RoleCommander sends commands to edges (edges.<edge>.cmd.>, queued in
	// the COMMANDS stream) and reads nothing else.
	RoleCommander = "commander"
)

// Roles lists the cloud roles, sorted.
func Roles() []string {
	r := []string{RoleAdmin, RoleReader, RoleCommander}
	sort.Strings(r)
	return r
}

const telemetryStream = "TELEMETRY"

// CloudRolePermissions returns the permissions of a cloud user with role.
// edges narrows a commander to those edges' command subjects (empty: every
// edge); the other roles do not take edges.
func CloudRolePermissions(role string, edges []string) (jwt.Permissions, error) {
	var p jwt.Permissions
	if len(edges) > 0 && role != RoleCommander {
		return p, fmt.Errorf("role %q: edges can only narrow the %q role", role, RoleCommander)
	}
	switch role {
	case RoleAdmin:
		return p, nil // no restriction inside CLOUD
	case RoleReader:
		js := "$JS.API."
		p.Pub.Allow.Add(
			js+"INFO",
			js+"STREAM.INFO."+telemetryStream,
			js+"STREAM.MSG.GET."+telemetryStream,
			js+"DIRECT.GET."+telemetryStream,
			js+"DIRECT.GET."+telemetryStream+".>",
			js+"CONSUMER.CREATE."+telemetryStream,
			js+"CONSUMER.CREATE."+telemetryStream+".>",
			js+"CONSUMER.DURABLE.CREATE."+telemetryStream+".>",
			js+"CONSUMER.INFO."+telemetryStream+".>",
			// No CONSUMER.DELETE: a reader could delete other
			// applications' consumers. Ordered and ephemeral consumers
			// expire on their own (their inactive threshold); durable ones
			// are removed by an admin.
			js+"CONSUMER.MSG.NEXT."+telemetryStream+".>",
			"$JS.ACK."+telemetryStream+".>",
			"$JS.FC."+telemetryStream+".>",
		)
		p.Sub.Allow.Add(cloudTelemetryExport, "_INBOX.>")
		return p, nil
	case RoleCommander:
		if len(edges) == 0 {
			p.Pub.Allow.Add("edges.*.cmd.>")
		}
		for _, e := range edges {
			p.Pub.Allow.Add(CloudCommandSubject(e))
		}
		p.Pub.Allow.Add("$JS.API.INFO", "$JS.API.STREAM.INFO."+CommandsStream)
		p.Sub.Allow.Add("_INBOX.>")
		return p, nil
	}
	return p, fmt.Errorf("role %q: want one of %s", role, strings.Join(Roles(), ", "))
}
