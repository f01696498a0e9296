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

// CloudRolePermissions returns the permissions of the cloud user named user
// with role. edges narrows a commander to those edges' command subjects
// (empty: every edge); the other roles do not take edges. Every role but
// admin receives replies only on the user's own inbox (CloudInboxPrefix)
// and a reader touches only its own consumers (CloudConsumerNames): another
// user's JetStream answers, service replies and consumers are out of its
// reach. An admin is not narrowed: it may create streams and consumers on
// any subject of CLOUD (a stream on _INBOX.> would record every reply), so
// a narrower subscription would not keep anything from it.
func CloudRolePermissions(user, role string, edges []string) (jwt.Permissions, error) {
	var p jwt.Permissions
	if len(edges) > 0 && role != RoleCommander {
		return p, fmt.Errorf("role %q: edges can only narrow the %q role", role, RoleCommander)
	}
	switch role {
	case RoleAdmin:
		return p, nil // no restriction inside CLOUD
	case RoleReader:
		return CloudTelemetryReadPermissions(user, nil), nil
	case RoleCommander:
		if len(edges) == 0 {
			p.Pub.Allow.Add("edges.*.cmd.>")
		}
		for _, e := range edges {
			p.Pub.Allow.Add(CloudCommandSubject(e))
		}
		base := CloudCommandBasePermissions(user)
		p.Pub.Allow.Add(base.Pub.Allow...)
		p.Sub.Allow.Add(base.Sub.Allow...)
		return p, nil
	}
	return p, fmt.Errorf("role %q: want one of %s", role, strings.Join(Roles(), ", "))
}
