package accounts

import (
	"testing"
)

// TestUpgradeKeepsPolicy: 'tether store upgrade' (and 'tether dev' at
// start) rewrites accounts to the contract, but what the applied policy
// adds stays, and a second upgrade changes nothing.
func TestUpgradeKeepsPolicy(t *testing.T) {
	s, err := Init(t.TempDir()+"/s", DefaultInitOptions())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddEdge("ber-1"); err != nil {
		t.Fatal(err)
	}
	src := []byte("version: 1\nedges:\n  ber-1: {calls: [billing]}\nroles:\n  dash: {telemetry: [ber-1]}\n")
	plan, err := s.PlanPolicy("p.yaml", src)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.ApplyPolicy(plan, 0); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		changed, err := s.Upgrade()
		if err != nil || len(changed) != 0 {
			t.Fatalf("upgrade %d: changed %v, %v; want nothing", i, changed, err)
		}
	}
	again, err := s.PlanPolicy("p.yaml", src)
	if err != nil {
		t.Fatal(err)
	}
	if len(again.Changed) != 0 {
		t.Fatalf("after upgrade the policy's accounts differ: %v", again.Changed)
	}
}
