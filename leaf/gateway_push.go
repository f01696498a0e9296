package leaf

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/tether-fabric/tether/contract"
	"github.com/tether-fabric/tether/internal/securefile"
	"github.com/tether-fabric/tether/policy"
)

// How the gateway configuration reaches an edge: 'tether policy apply'
// keeps every edge's in the CLOUD bucket contract.GatewayBucket and pushes
// the changed ones over the edges' own links, on the control subject
// contract.GatewayControlSubject, like key rotation; an edge whose link
// comes up asks for its own once (contract.LocalGatewayFetch, a direct get
// of its key answered by the hubs' JetStream), so one that was offline
// during an apply catches up without an operator action. The edge writes
// what it gets to its data dir (pushedGatewayFile, 0600, atomically) and
// applies it at once; it survives restarts and outages (the edge enforces
// its last configuration while offline). An edge started with the leaf
// config key "gateway" uses that file instead, and a push or fetch
// rewrites it. Nothing about it runs on the hubs while nothing changes.

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
	cfg, err := g.install(m.Data, revisionOf(m.Header.Get(contract.HeaderGatewayRevision)))
	if err != nil {
		reply(contract.GatewayPushReply{Error: err.Error()})
		return
	}
	reply(contract.GatewayPushReply{Applied: true, Exposed: cfg.Expose, Grants: len(cfg.Grants)})
}

// revisionOf reads a configuration's bucket revision from a header; 0
// (unknown: an older operator tool) is installed whatever is in force.
func revisionOf(v string) uint64 {
	rev, _ := strconv.ParseUint(v, 10, 64)
	return rev
}

// install checks, writes and applies a configuration of bucket revision
// rev, unless the one in force is newer (a fetch answered before an apply
// and delivered after the apply's push); then it keeps and returns the
// one in force.
func (g *gateway) install(data []byte, rev uint64) (policy.Gateway, error) {
	cfg, err := parseGateway(data, g.edge)
	if err != nil {
		return cfg, fmt.Errorf("gateway configuration refused: %w", err)
	}
	g.installMu.Lock()
	defer g.installMu.Unlock()
	if rev != 0 && rev < g.rev {
		g.log.Debug("older gateway configuration ignored", "revision", rev, "in_force", g.rev)
		g.mu.Lock()
		defer g.mu.Unlock()
		return g.cfg, nil
	}
	if err := securefile.Write(g.path, data, 0o600); err != nil {
		return cfg, fmt.Errorf("gateway configuration not written to %s: %w", g.path, err)
	}
	if rev != 0 {
		g.rev = rev
	}
	g.mu.Lock()
	g.cfgMod = g.cfgMod.Add(-1) // reload even within the file system's time resolution
	g.mu.Unlock()
	return cfg, g.reload()
}

// maxFetchTries bounds the asks for the configuration on one link: the
// hubs' interest may reach the edge a moment after the link is up, and an
// older store's edge account has no import to ask through.
const maxFetchTries = 3

// fetchOnLink asks the cloud for the edge's configuration once per link
// (the gateway's loop runs at the edge; the hubs see one request per link
// up, answered by their JetStream) and installs it when it differs from
// the one in force. A 404 answer means the policy has none for this edge
// yet: the edge keeps what it has.
func (g *gateway) fetchOnLink() {
	if !g.linked() {
		g.fetched, g.fetchTries = false, 0
		return
	}
	if g.fetched || g.fetchTries >= maxFetchTries {
		return
	}
	g.fetchTries++
	resp, err := g.plumbing.Request(contract.LocalGatewayFetch, nil, 5*time.Second)
	if err != nil {
		g.log.Debug("gateway configuration not fetched", "try", g.fetchTries, "err", err)
		return
	}
	g.fetched = true
	if st := resp.Header.Get("Status"); st != "" {
		if st != "404" {
			g.setErr(fmt.Sprintf("gateway configuration not fetched from the cloud: status %s %s", st, resp.Header.Get("Description")))
		}
		return
	}
	rev := revisionOf(resp.Header.Get("Nats-Sequence"))
	if cur, err := os.ReadFile(g.path); err == nil && bytes.Equal(cur, resp.Data) {
		g.installMu.Lock()
		g.rev = max(g.rev, rev)
		g.installMu.Unlock()
		return
	}
	cfg, err := g.install(resp.Data, rev)
	if err != nil {
		g.setErr(err.Error())
		return
	}
	g.log.Debug("gateway configuration fetched from the cloud", "exposed", cfg.Expose, "grants", len(cfg.Grants))
}
