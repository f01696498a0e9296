package policy

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/nats-io/jwt/v2"
	"golang.org/x/tools/txtar"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata")

// goldenEdges are the edge accounts of the golden tests' store: the edges
// the policy files name, and plant-x, an edge the files never mention.
var goldenEdges = []string{"ber-1", "ber-2", "mun-1", "lyon-1", "plant-x"}

// TestGolden compiles each testdata/*.txtar's policy.yaml (one per kind of
// rule) and compares the diagnostics, the CLOUD scopes, the edge accounts
// and the gateways with the archive. Regenerate: go test ./policy -update.
func TestGolden(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.txtar"))
	if len(files) == 0 {
		t.Fatal("no golden files")
	}
	for _, path := range files {
		t.Run(strings.TrimSuffix(filepath.Base(path), ".txtar"), func(t *testing.T) {
			ar, err := txtar.ParseFile(path)
			if err != nil {
				t.Fatal(err)
			}
			var src []byte
			for _, f := range ar.Files {
				if f.Name == "policy.yaml" {
					src = f.Data
				}
			}
			got := goldenOutputs(t, src)
			want := map[string][]byte{}
			for _, f := range ar.Files {
				want[f.Name] = f.Data
			}
			if *update {
				out := &txtar.Archive{Comment: ar.Comment, Files: []txtar.File{{Name: "policy.yaml", Data: src}}}
				for _, name := range sortedKeys(got) {
					out.Files = append(out.Files, txtar.File{Name: name, Data: got[name]})
				}
				if err := os.WriteFile(path, txtar.Format(out), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			for name, data := range got {
				if !bytes.Equal(data, want[name]) {
					t.Errorf("%s changed (run go test ./policy -update and review):\n--- got\n%s\n--- want\n%s", name, data, want[name])
				}
			}
			for name := range want {
				if _, ok := got[name]; !ok && name != "policy.yaml" {
					t.Errorf("%s is in the golden file but no longer produced (run -update)", name)
				}
			}
		})
	}
}

func goldenOutputs(t *testing.T, src []byte) map[string][]byte {
	p, diags := Parse("policy.yaml", src)
	got := map[string][]byte{}
	var d bytes.Buffer
	for _, x := range diags {
		d.WriteString(x.String() + "\n")
	}
	if d.Len() > 0 {
		got["diagnostics.txt"] = d.Bytes()
	}
	if diags.Err() != nil {
		return got
	}
	edges := append([]string{}, goldenEdges...)
	for _, e := range p.Edges {
		if !contains(edges, e.Name) {
			edges = append(edges, e.Name)
		}
	}
	f := testFacts(t, p, edges...)
	out, err := Compile(p, f)
	if err != nil {
		t.Fatal(err)
	}
	if err := Verify(p, f, out); err != nil {
		t.Fatalf("compiled wider than the file: %v", err)
	}
	again, _ := Compile(p, f)
	if !bytes.Equal(mustJSON(t, out), mustJSON(t, again)) {
		t.Fatal("compiling twice gave different output")
	}
	got["cloud-scopes.json"] = mustJSON(t, cloudScopes(out.Cloud))
	changed := map[string]any{}
	for _, e := range sortedKeys(out.Edges) {
		if ch := DiffAccount("EDGE_"+e, f.Edges[e], out.Edges[e]); len(ch) > 0 {
			changed[e] = edgeView(out.Edges[e])
		}
	}
	if len(changed) > 0 {
		got["edges-changed.json"] = mustJSON(t, changed)
	}
	got["gateways.json"] = mustJSON(t, out.Gateways)
	if len(out.Groups) > 0 {
		got["group-streams.json"] = mustJSON(t, out.Groups)
	}
	var words bytes.Buffer
	for _, c := range Diff(f, out, nil, nil) {
		words.WriteString(c.String() + "\n")
	}
	got["diff.txt"] = words.Bytes()
	if len(out.Notes) > 0 {
		got["notes.txt"] = []byte(strings.Join(out.Notes, "\n") + "\n")
	}
	return got
}

// cloudScopes is the CLOUD account's scoped signing keys by role, and its
// exports.
func cloudScopes(ac *jwt.AccountClaims) map[string]any {
	scopes := map[string]any{}
	for _, s := range ac.SigningKeys {
		if sc, ok := s.(*jwt.UserScope); ok {
			scopes[sc.Role] = map[string]any{"key": sc.Key, "description": sc.Description, "permissions": sc.Template.Permissions}
		}
	}
	var exports []string
	for _, e := range ac.Exports {
		exports = append(exports, string(e.Subject))
	}
	sort.Strings(exports)
	return map[string]any{"scopes": scopes, "exports": exports}
}

func edgeView(ac *jwt.AccountClaims) map[string]any {
	var imports, exports []string
	for _, im := range ac.Imports {
		imports = append(imports, im.Name+": "+string(im.LocalSubject)+" -> "+string(im.Subject))
	}
	for _, ex := range ac.Exports {
		exports = append(exports, ex.Name+": "+string(ex.Subject))
	}
	var leaf any
	for _, s := range ac.SigningKeys {
		if sc, ok := s.(*jwt.UserScope); ok {
			leaf = sc.Template.Permissions
		}
	}
	return map[string]any{"imports": imports, "exports": exports, "leaf": leaf}
}

func mustJSON(t testing.TB, v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestDocsExample: the example of docs/POLICY.md is the golden example.
func TestDocsExample(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "docs", "examples", "policy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	ar, err := txtar.ParseFile(filepath.Join("testdata", "example.txtar"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ar.Files[0].Data, doc) {
		t.Fatal("docs/examples/policy.yaml and policy/testdata/example.txtar differ: copy the doc's file into the archive and run -update")
	}
}
