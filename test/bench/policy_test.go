//go:build bench

// Policy at scale (issue 13): check, diff and apply of a policy of 10,000
// edges in 50 groups, the size of every JWT it produces, and one hub's
// time to take the update. Run (about 3 min on 2 cores, most of it
// creating the store):
//
//	go test -tags bench -run '^TestBenchPolicy$' -count=1 -v -timeout 30m ./test/bench
//
// TETHER_POLICY_EDGES (default 10000) and TETHER_POLICY_GROUPS (default 50)
// change the fleet.
package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tether-fabric/tether/contract"
	"github.com/tether-fabric/tether/fleet"

	"github.com/tether-fabric/tether/hub"
	"github.com/tether-fabric/tether/internal/tethertest"
	"github.com/tether-fabric/tether/policy"
)

// benchPolicy writes a fleet policy: n edges labelled with one of g sites
// (a group each, exposing vision and calling billing), lines linked in
// pairs, roles over every edge, a maintenance role calling a service on
// each group and a site role reading and commanding one group.
func benchPolicy(n, g int, changed bool) string {
	var b strings.Builder
	b.WriteString("version: 1\nedges:\n")
	for i := 0; i < n; i++ {
		peer := i ^ 1
		if peer >= n {
			peer = i
		}
		fmt.Fprintf(&b, "  e%05d: {labels: {site: s%02d, region: r%d}, links: [e%05d]}\n", i, i%g, i%g%2, peer)
	}
	b.WriteString("groups:\n")
	for s := 0; s < g; s++ {
		fmt.Fprintf(&b, "  site-%02d: {match_labels: {site: s%02d}, expose: [vision, plc-read], calls: [billing]}\n", s, s)
	}
	rate := "10/s"
	if changed {
		rate = "5/s"
	}
	fmt.Fprintf(&b, `roles:
  reader: {telemetry: ["*"]}
  commander: {commands: [{to: ["*"], subjects: [">"]}]}
  admin: {admin: true}
  billing: {serve: [billing]}
  site-00-ops:
    telemetry: ["group:site-00"]
    commands: [{to: ["group:site-00"], subjects: [reboot]}]
  maintenance:
    services:
`)
	for s := 0; s < g; s++ {
		fmt.Fprintf(&b, "      - {service: plc-read, on: [\"group:site-%02d\"], rate: %s, max_in_flight: 4, audit: true}\n", s, rate)
	}
	return b.String()
}

func TestBenchPolicy(t *testing.T) {
	n := envInt(t, "TETHER_POLICY_EDGES", 10000)
	g := envInt(t, "TETHER_POLICY_GROUPS", 50)
	store := tethertest.NewStore(t)
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for w := 0; w < 4; w++ { // edges are separate directories of the store
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 4 {
				if _, err := store.AddEdgeForEnrollment(fmt.Sprintf("e%05d", i)); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	t.Logf("store with %d edges created in %s", n, time.Since(start).Round(time.Millisecond))
	// The hub loads every account of the store at start: give it time.
	h, err := hub.New(tethertest.HubConfig(t, store, "hub-1"), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	start = time.Now()
	if err := h.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Shutdown(context.Background()) })
	t.Logf("hub started with %d accounts in %s", n+2, time.Since(start).Round(time.Millisecond))
	cloudBefore := mustAccount(t, store, contract.CloudAccountName)

	run := func(label string, src []byte) {
		path := filepath.Join(t.TempDir(), "policy.yaml")
		if err := os.WriteFile(path, src, 0o644); err != nil {
			t.Fatal(err)
		}
		t0 := time.Now()
		_, diags := policy.Parse(path, src)
		check := time.Since(t0)
		if err := diags.Err(); err != nil {
			t.Fatal(err)
		}
		t0 = time.Now()
		plan, err := store.PlanPolicy(path, src)
		if err != nil {
			t.Fatal(err)
		}
		diff := time.Since(t0)
		t0 = time.Now()
		v, push, err := store.ApplyPolicy(plan, 0)
		if err != nil {
			t.Fatal(err)
		}
		apply := time.Since(t0)
		sizes := make([]int, 0, len(push))
		total, cloud := 0, 0
		for _, a := range push {
			sizes = append(sizes, len(a.JWT))
			total += len(a.JWT)
			if a.Name == contract.CloudAccountName {
				cloud = len(a.JWT)
			}
		}
		slices.Sort(sizes)
		nc, err := fleet.ConnectSystem(store, h.ClientURL())
		if err != nil {
			t.Fatal(err)
		}
		t0 = time.Now()
		failed := 0
		for _, a := range push {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			if _, err := fleet.Push(ctx, nc, a.JWT, []string{"hub-1"}); err != nil {
				failed++
			}
			cancel()
		}
		pushed := time.Since(t0)
		nc.Close()
		cloudNC, err := fleet.ConnectCloud(store, h.ClientURL())
		if err != nil {
			t.Fatal(err)
		}
		t0 = time.Now()
		gctx, gcancel := context.WithTimeout(context.Background(), 5*time.Minute)
		changes, err := fleet.ApplyGroupStreams(gctx, cloudNC, plan.Output.Groups)
		gcancel()
		grouped := time.Since(t0)
		cloudNC.Close()
		if err != nil {
			t.Fatalf("group streams: %v", err)
		}
		var made, moved int
		for _, c := range changes {
			if c.Created {
				made++
			} else {
				moved += len(c.Joined) + len(c.Left)
			}
		}
		if failed == 0 {
			if err := store.MarkPolicyPushed(v.Version); err != nil {
				t.Fatal(err)
			}
		}
		t.Logf("%s: %d bytes of YAML, %d changes in words", label, len(src), len(plan.Changes))
		t.Logf("%s: group streams: %d in the policy, %d created, %d member changes, applied in %s",
			label, len(plan.Output.Groups), made, moved, grouped.Round(time.Millisecond))
		t.Logf("%s: check %s, diff (facts+compile+verify+diff) %s, apply (sign+write) %s, push to the hub %s (%d JWTs, %.0f/s, %d failed)",
			label, check.Round(time.Millisecond), diff.Round(time.Millisecond), apply.Round(time.Millisecond),
			pushed.Round(time.Millisecond), len(push), float64(len(push))/pushed.Seconds(), failed)
		if len(sizes) > 0 {
			t.Logf("%s: JWTs produced: %d, min %d B, max %d B, total %d B; CLOUD %d B (before any policy: %d B)",
				label, len(sizes), sizes[0], sizes[len(sizes)-1], total, cloud, len(cloudBefore.JWT))
		}
	}
	run("first apply", []byte(benchPolicy(n, g, false)))
	run("one rule changed (a rate)", []byte(benchPolicy(n, g, true)))
	src := strings.Replace(benchPolicy(n, g, true), "subjects: [reboot]", "subjects: [reboot, diag]", 1)
	run("one role changed (a command)", []byte(src))
	// Ten edges move from site 00 to site 01: the groups' streams change,
	// no account JWT does.
	moved := src
	for i := 0; i < 10*g && i < n; i += g {
		moved = strings.Replace(moved, fmt.Sprintf("  e%05d: {labels: {site: s00,", i), fmt.Sprintf("  e%05d: {labels: {site: s01,", i), 1)
	}
	run("ten edges moved between groups", []byte(moved))
	src = moved

	// Every edge changed, applied by the command an operator runs (its
	// push has several JWTs in flight).
	bin, _ := buildBinary(t, t.TempDir())
	every := strings.ReplaceAll(src, "calls: [billing]", "calls: [billing, metering]")
	path := filepath.Join(t.TempDir(), "every.yaml")
	if err := os.WriteFile(path, []byte(every), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel2()
	t0 := time.Now()
	out, err := exec.CommandContext(ctx2, bin, "policy", "apply", path, "--dir", store.Dir(), "--push", h.ClientURL(),
		"--timeout", "10m").Output()
	took := time.Since(t0)
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if err != nil || len(lines) < 2 {
		t.Fatalf("tether policy apply: %v\n%s", err, out)
	}
	t.Logf("every edge changed, 'tether policy apply --push' (check+diff+apply+push): %s; %s; %s",
		took.Round(time.Millisecond), lines[len(lines)-2], lines[len(lines)-1])
}
