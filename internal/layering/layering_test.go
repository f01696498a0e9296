package layering

import (
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/tether-fabric/tether"

type pkg struct {
	ImportPath string
	Imports    []string
	Deps       []string
	Standard   bool
}

// list runs 'go list -deps -json' over patterns (from the module's root)
// and returns the packages by import path.
func list(t *testing.T, patterns ...string) map[string]pkg {
	t.Helper()
	cmd := exec.Command("go", append([]string{"list", "-deps", "-json"}, patterns...)...)
	cmd.Dir = "../.."
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("go list: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("go list: %v", err)
	}
	pkgs := map[string]pkg{}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p pkg
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs[p.ImportPath] = p
	}
	return pkgs
}

func within(path, prefix string) bool { return path == prefix || strings.HasPrefix(path, prefix+"/") }

func TestLayering(t *testing.T) {
	pkgs := list(t, "./...")
	own := func(rel string) string { return module + "/" + rel }
	rules := []struct {
		name      string
		from      string   // packages at or below this path
		forbidden []string // may not depend on these (or below), even indirectly
	}{
		{"the edge does not link the cloud server, the store or the operator's clients", own("leaf"),
			[]string{own("hub"), own("accounts"), own("fleet"), own("internal/cloudjs")}},
		{"the cloud server does not link the edge", own("hub"), []string{own("leaf")}},
		{"the contract links nothing of Tether's", own("contract"),
			[]string{own("hub"), own("leaf"), own("accounts"), own("fleet"), own("policy"), own("internal")}},
		{"the policy is pure", own("policy"),
			[]string{"github.com/nats-io/nats-server", "github.com/nats-io/nats.go", own("hub"), own("leaf"), own("accounts"), own("fleet")}},
		{"the store does not speak NATS", own("accounts"),
			[]string{"github.com/nats-io/nats-server", "github.com/nats-io/nats.go", own("hub"), own("leaf"), own("fleet")}},
	}
	for _, r := range rules {
		t.Run(r.name, func(t *testing.T) {
			var checked int
			for path, p := range pkgs {
				if !within(path, r.from) || strings.HasSuffix(path, ".test") {
					continue
				}
				checked++
				for _, d := range p.Deps {
					for _, f := range r.forbidden {
						if within(d, f) {
							t.Errorf("%s depends on %s", path, d)
						}
					}
				}
			}
			if checked == 0 {
				t.Fatalf("no package at %s: the rule checks nothing", r.from)
			}
		})
	}
}

// TestContractImports: the contract's own imports are the standard
// library, jwt/v2 and nkeys, nothing else.
func TestContractImports(t *testing.T) {
	pkgs := list(t, "./contract")
	allowed := []string{"github.com/nats-io/jwt/v2", "github.com/nats-io/nkeys"}
	p, ok := pkgs[module+"/contract"]
	if !ok {
		t.Fatal("no contract package")
	}
	for _, imp := range p.Imports {
		if std, ok := pkgs[imp]; ok && std.Standard {
			continue
		}
		if !slices.Contains(allowed, imp) {
			t.Errorf("contract imports %s; want only the standard library and %v", imp, allowed)
		}
	}
}
