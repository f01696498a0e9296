package policy

import (
	"crypto/sha256"
	"fmt"
	"strings"
	"testing"

	"github.com/nats-io/nkeys"
)

// fleetPolicy writes a policy of n edges in 4 groups: roles reading and
// commanding every edge, a role calling a service exposed by a group,
// groups calling a cloud service and linked pairwise, a role reading the
// telemetry of two groups (a quarter of the fleet each) and commanding
// one.
func fleetPolicy(n int) string {
	var b strings.Builder
	b.WriteString("version: 1\nedges:\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "  e-%d: {labels: {site: s%d}}\n", i, i%4)
	}
	b.WriteString("groups:\n")
	for g := 0; g < 4; g++ {
		fmt.Fprintf(&b, "  g%d: {match_labels: {site: s%d}, expose: [vision], calls: [billing]}\n", g, g)
	}
	b.WriteString(`roles:
  reader: {telemetry: ["*"]}
  site-dash: {telemetry: ["group:g0", "group:g1"], commands: [{to: ["group:g0"], subjects: [reboot, "config.>"]}]}
  commander: {commands: [{to: ["*"], subjects: [">"]}]}
  admin: {admin: true}
  quality: {services: [{service: vision, on: ["*"], rate: 5/s, audit: true}]}
  billing: {serve: [billing]}
`)
	return b.String()
}

// TestCloudJWTSizeIndependentOfEdges: with grants on every edge ("*"), on
// groups' telemetry and commands and on services, the CLOUD account JWT has the same
// size for a fleet of 0 and of 1,000 edges (labelled, grouped, calling
// cloud services and exposing services): only the edges' own accounts,
// gateways and the group streams' member lists grow.
func TestCloudJWTSizeIndependentOfEdges(t *testing.T) {
	seed := sha256.Sum256([]byte("operator"))
	op, err := nkeys.FromRawSeed(nkeys.PrefixByteOperator, seed[:])
	if err != nil {
		t.Fatal(err)
	}
	size := func(n int) int {
		p, diags := Parse("fleet.yaml", []byte(fleetPolicy(n)))
		if diags.Err() != nil {
			t.Fatal(diags.Err())
		}
		var edges []string
		for _, e := range p.Edges {
			edges = append(edges, e.Name)
		}
		f := testFacts(t, p, edges...)
		out, err := Compile(p, f)
		if err != nil {
			t.Fatal(err)
		}
		ajwt, err := out.Cloud.Encode(op)
		if err != nil {
			t.Fatal(err)
		}
		if n > 0 && len(out.Gateways[0].Grants) == 0 {
			t.Fatal("no gateway grant compiled: the fleet policy does not exercise services")
		}
		if len(out.Groups) != 2 || n > 0 && len(out.Groups[0].Edges) != n/4 || !out.Groups[0].Commands || out.Groups[1].Commands {
			t.Fatalf("group streams %+v: want g0 (telemetry, commands) and g1 (telemetry) with %d members each", out.Groups, n/4)
		}
		return len(ajwt)
	}
	zero, thousand := size(0), size(1000)
	if zero != thousand {
		t.Fatalf("CLOUD JWT is %d B for 0 edges and %d B for 1,000: it must not grow with the fleet", zero, thousand)
	}
	t.Logf("CLOUD JWT: %d B for 0 and for 1,000 edges", zero)
}
