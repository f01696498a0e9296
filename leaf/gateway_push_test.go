package leaf

import (
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/tether-fabric/tether/policy"
)

// TestGatewayInstallOrder: a configuration older (by bucket revision) than
// the one in force is not installed, so a fetch answered before an apply
// and delivered after the apply's push cannot undo the apply; a revision
// of 0 (an older operator tool) is installed whatever is in force.
func TestGatewayInstallOrder(t *testing.T) {
	g := &gateway{edge: "plant-7", path: filepath.Join(t.TempDir(), pushedGatewayFile),
		log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	conf := func(svc string) []byte {
		data, err := json.Marshal(policy.Gateway{Edge: "plant-7", Expose: []string{svc}})
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	steps := []struct {
		svc  string
		rev  uint64
		want string // the service exposed afterwards, in force and on disk
	}{
		{"first", 3, "first"},
		{"pushed", 7, "pushed"},
		{"stale-fetch", 5, "pushed"},
		{"same-rev", 7, "same-rev"},
		{"old-tool", 0, "old-tool"},
		{"stale-again", 6, "old-tool"},
		{"newer", 8, "newer"},
	}
	for _, s := range steps {
		cfg, err := g.install(conf(s.svc), s.rev)
		if err != nil {
			t.Fatalf("install %s (rev %d): %v", s.svc, s.rev, err)
		}
		onDisk, err := os.ReadFile(g.path)
		if err != nil {
			t.Fatal(err)
		}
		var disk policy.Gateway
		_ = json.Unmarshal(onDisk, &disk)
		if !slices.Equal(cfg.Expose, []string{s.want}) || !slices.Equal(g.cfg.Expose, []string{s.want}) || !slices.Equal(disk.Expose, []string{s.want}) {
			t.Errorf("after %s (rev %d): returned %v, in force %v, on disk %v; want %s",
				s.svc, s.rev, cfg.Expose, g.cfg.Expose, disk.Expose, s.want)
		}
	}
}
