package policy

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"
	"golang.org/x/tools/txtar"
)

// addSeeds adds every golden policy file to the fuzz corpus.
func addSeeds(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.txtar"))
	for _, path := range files {
		ar, err := txtar.ParseFile(path)
		if err != nil {
			f.Fatal(err)
		}
		for _, file := range ar.Files {
			if file.Name == "policy.yaml" {
				f.Add(file.Data)
			}
		}
	}
	f.Add([]byte("version: 1\nedges: {a: {labels: {x: y}, links: [b]}, b: {labels: {x: y}, links: [\"group:g\"]}}\ngroups: {g: {match_labels: {x: y}}}\n"))
	f.Add([]byte("version: 1\nroles: {r: {commands: [{to: ['*'], subjects: ['a.*.>']}]}}\n"))
	f.Add([]byte("&a [*a]"))
	f.Add([]byte("version: 1\nedges: {a: {labels: {x: y}, expose: ['*'], calls: [c], links: [b]}, b: {labels: {x: y}, expose: [s], links: [a]}}\nroles: {r: {services: [{service: '*', on: ['*']}, {service: s, endpoint: e, on: [b], rate: 1/s}]}}\nusers: {u: {services: [{service: s, on: [a, b]}], serve: [c]}}\n"))
}

// FuzzParse: parsing never panics, and a file without errors compiles to
// claims no wider than it names (Verify), the same way twice.
func FuzzParse(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		compileChecked(t, data, 0)
	})
}

// FuzzCompile: like FuzzParse, over stores that hold more edges than the
// file names and a scoped key of a principal the file no longer has.
func FuzzCompile(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		compileChecked(t, data, 3)
	})
}

func compileChecked(t *testing.T, data []byte, extraEdges int) {
	p, diags := Parse("fuzz.yaml", data)
	for _, d := range diags {
		if d.Severity != SeverityError && d.Severity != SeverityWarning || d.Pos.Line < 0 {
			t.Fatalf("malformed diagnostic %+v", d)
		}
	}
	if diags.Err() != nil {
		return
	}
	var edges []string
	for _, e := range p.Edges {
		edges = append(edges, e.Name)
	}
	for i := 0; i < extraEdges; i++ {
		edges = append(edges, "extra-"+string(rune('a'+i)))
	}
	facts := testFacts(t, p, edges...)
	if extraEdges > 0 {
		facts.ScopeKeys["user:gone"] = fixedKey(t, nkeys.PrefixByteAccount, "gone")
	}
	out, err := Compile(p, facts)
	if err != nil {
		t.Fatalf("valid policy does not compile: %v\n%s", err, data)
	}
	if err := Verify(p, facts, out); err != nil {
		t.Fatalf("compiled grants wider than the file:\n%v\n%s", err, data)
	}
	again, err := Compile(p, facts)
	if err != nil || !bytes.Equal(mustJSON(t, out), mustJSON(t, again)) {
		t.Fatalf("compiling twice differs (%v)", err)
	}
}

// TestVerifyCatchesWidening: Verify is not vacuous: a subject, import or
// gateway grant the file does not name is reported.
func TestVerifyCatchesWidening(t *testing.T) {
	src, err := os.ReadFile(filepath.Join("testdata", "commands.txtar"))
	if err != nil {
		t.Fatal(err)
	}
	ar := txtar.Parse(src)
	p, diags := Parse("commands.yaml", ar.Files[0].Data)
	if diags.Err() != nil {
		t.Fatal(diags.Err())
	}
	for _, tc := range []struct {
		name   string
		widen  func(*Output)
		expect string
	}{
		{"command to another edge", func(o *Output) {
			for _, s := range o.Cloud.SigningKeys {
				if sc, ok := s.(*jwt.UserScope); ok && sc.Role == "maintenance" {
					sc.Template.Permissions.Pub.Allow.Add("edges.mun-1.cmd.diag.x")
				}
			}
		}, `may publish "edges.mun-1.cmd.diag.x"`},
		{"empty allow list", func(o *Output) {
			for _, s := range o.Cloud.SigningKeys {
				if sc, ok := s.(*jwt.UserScope); ok && sc.Role == "fleet-ops" {
					sc.Template.Permissions.Pub = jwt.Permission{}
				}
			}
		}, "empty allow list"},
		{"an edge import", func(o *Output) {
			o.Edges["ber-1"].Imports.Add(&jwt.Import{Name: "call-billing", Subject: "edges.ber-1.call.billing.>", Account: o.Cloud.Subject, Type: jwt.Service})
		}, `edge ber-1 imports "edges.ber-1.call.billing.>"`},
		{"a service call on another edge", func(o *Output) {
			for _, s := range o.Cloud.SigningKeys {
				if sc, ok := s.(*jwt.UserScope); ok && sc.Role == "maintenance" {
					sc.Template.Permissions.Pub.Allow.Add("edges.mun-1.svc.vision.>")
				}
			}
		}, `may publish "edges.mun-1.svc.vision.>"`},
		{"an edge call without a link", func(o *Output) {
			for _, s := range o.Edges["ber-1"].SigningKeys {
				if sc, ok := s.(*jwt.UserScope); ok {
					sc.Template.Permissions.Pub.Allow.Add("tether.svc.out.ber-1.edges.mun-1.svc.>")
				}
			}
		}, `may call edge "mun-1" without a link`},
		{"another edge's calls", func(o *Output) {
			for _, s := range o.Edges["ber-1"].SigningKeys {
				if sc, ok := s.(*jwt.UserScope); ok {
					sc.Template.Permissions.Pub.Allow.Add("tether.svc.out.mun-1.cloud.svc.billing.>")
				}
			}
		}, `may publish "tether.svc.out.mun-1.cloud.svc.billing.>"`},
		{"a gateway grant", func(o *Output) {
			o.Gateways[0].Expose = []string{"vision"}
			o.Gateways[0].Grants = append(o.Gateways[0].Grants, ServiceGrant{Caller: Principal{Kind: PrincipalRole, Name: "fleet-ops"}, Service: "vision", Endpoint: "*"})
		}, "may call vision.*"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := testFacts(t, p, goldenEdges...)
			out, err := Compile(p, f)
			if err != nil {
				t.Fatal(err)
			}
			if err := Verify(p, f, out); err != nil {
				t.Fatalf("before widening: %v", err)
			}
			tc.widen(out)
			err = Verify(p, f, out)
			if err == nil || !strings.Contains(err.Error(), tc.expect) {
				t.Fatalf("Verify = %v, want an error containing %q", err, tc.expect)
			}
		})
	}
}
