package main

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tether-fabric/tether/internal/tethertest"
)

// TestStatusTable: 'tether status' shows sizes in human units in its table
// and exact bytes in --json, and an edge that never linked as "never
// linked", not as the raw "consumer not found" of its missing queue.
func TestStatusTable(t *testing.T) {
	store := tethertest.NewStore(t)
	h := tethertest.RunHub(t, tethertest.HubConfig(t, store, "hub-1"), nil)
	tethertest.AddEdge(t, store, "plant-7", h)
	lc := tethertest.LeafConfig(t, tethertest.WriteBundle(t, store, "plant-7", h))
	lc.StatusInterval = 200 * time.Millisecond
	l := tethertest.RunLeaf(t, lc, nil)
	tethertest.WaitLinked(t, l, 15*time.Second)
	// In the store only: the running hub never heard of it.
	if _, err := store.AddEdge("plant-9"); err != nil {
		t.Fatal(err)
	}
	args := []string{"status", "--dir", store.Dir(), "--hub", h.ClientURL()}
	human := regexp.MustCompile(`(?m)^plant-7 .* \d+(\.\d)? (B|[KMGT]iB)/\d+\.\d [KMGT]iB `)
	var table string
	tethertest.WaitFor(t, 15*time.Second, func() error {
		code, stdout, stderr := runCLI(t, args...)
		if code != 0 {
			return fmt.Errorf("exit %d: %s", code, stderr)
		}
		table = stdout
		if !human.MatchString(stdout) {
			return fmt.Errorf("no plant-7 row with BYTES/BUDGET in human units (such as 0 B/1.0 GiB) in\n%s", stdout)
		}
		return nil
	})
	var row9 string
	for _, line := range strings.Split(table, "\n") {
		if strings.HasPrefix(line, "plant-9 ") {
			row9 = line
		}
	}
	if !strings.HasSuffix(row9, "never linked") || strings.Contains(table, "consumer not found") {
		t.Errorf("plant-9 row %q, want LAST ERROR \"never linked\" and no raw API error; table:\n%s", row9, table)
	}

	code, stdout, stderr := runCLI(t, append(args, "--json")...)
	if code != 0 {
		t.Fatalf("--json: exit %d: %s", code, stderr)
	}
	var views []struct {
		Edge        string  `json:"edge"`
		BudgetBytes *int64  `json:"budget_bytes"`
		BacklogByte *uint64 `json:"backlog_bytes"`
		Error       string  `json:"error"`
	}
	if err := json.Unmarshal([]byte(stdout), &views); err != nil {
		t.Fatalf("--json: %v\n%s", err, stdout)
	}
	for _, v := range views {
		switch v.Edge {
		case "plant-7":
			if v.BudgetBytes == nil || *v.BudgetBytes < 1<<20 || v.BacklogByte == nil {
				t.Errorf("--json plant-7: budget_bytes %v backlog_bytes %v, want exact byte counts", v.BudgetBytes, v.BacklogByte)
			}
		case "plant-9":
			if v.Error != "" {
				t.Errorf("--json plant-9: error %q, want none for an edge that never linked", v.Error)
			}
		}
	}
}
