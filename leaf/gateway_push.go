package leaf

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/nats-io/nats.go"

	"github.com/tether-fabric/tether/contract"
	"github.com/tether-fabric/tether/internal/securefile"
	"github.com/tether-fabric/tether/policy"
)

// How the gateway configuration reaches an edge: the operator's tools (or
// the policy compiler) push it over the edge's own link, on the control
// subject contract.GatewayControlSubject, like key rotation; the edge
// writes it to its data dir (pushedGatewayFile, 0600, atomically) and
// applies it at once; it survives restarts and outages (the edge enforces
// its last configuration while offline). An edge started with the leaf
// config key "gateway" uses that file instead, and a push rewrites it.
// Nothing about it runs on the hubs while nothing changes.

// pushedGatewayFile is where a pushed configuration is kept in the data
// dir.
const pushedGatewayFile = "gateway.json"

// parseGateway decodes and checks a gateway configuration for edge.
func parseGateway(data []byte, edge string) (policy.Gateway, error) {
	var cfg policy.Gateway
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&cfg); err != nil {
		return cfg, fmt.Errorf("%w (want the JSON of a policy.Gateway)", err)
	}
	if cfg.Edge != "" && cfg.Edge != edge {
		return cfg, fmt.Errorf("edge %q: this edge is %q", cfg.Edge, edge)
	}
	for i, gr := range cfg.Grants {
		switch {
		case !slices.Contains([]string{policy.PrincipalUser, policy.PrincipalRole, policy.PrincipalEdge}, gr.Caller.Kind):
			return cfg, fmt.Errorf("grants[%d].caller.kind %q: want user, role or edge", i, gr.Caller.Kind)
		case gr.Caller.Name == "" || gr.Service == "":
			return cfg, fmt.Errorf("grants[%d]: caller.name and service are required", i)
		case gr.Rate < 0 || gr.Burst < 0 || gr.MaxInFlight < 0:
			return cfg, fmt.Errorf("grants[%d]: rate, burst and max_in_flight must be >= 0", i)
		}
	}
	return cfg, nil
}

// handlePush takes a pushed configuration: checked, written, applied.
func (g *gateway) handlePush(m *nats.Msg) {
	reply := func(r contract.GatewayPushReply) {
		data, _ := json.Marshal(r)
		_ = m.Respond(data)
	}
	cfg, err := parseGateway(m.Data, g.edge)
	if err != nil {
		reply(contract.GatewayPushReply{Error: "gateway configuration refused: " + err.Error()})
		return
	}
	if err := securefile.Write(g.path, m.Data, 0o600); err != nil {
		reply(contract.GatewayPushReply{Error: fmt.Sprintf("gateway configuration not written to %s: %v", g.path, err)})
		return
	}
	g.mu.Lock()
	g.cfgMod = g.cfgMod.Add(-1) // reload even within the file system's time resolution
	g.mu.Unlock()
	if err := g.reload(); err != nil {
		reply(contract.GatewayPushReply{Error: err.Error()})
		return
	}
	reply(contract.GatewayPushReply{Applied: true, Exposed: cfg.Expose, Grants: len(cfg.Grants)})
}
