package contract

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/tools/txtar"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata")

// TestGolden pins the data-path contract: any change to what an edge may
// send or receive, or to the CLOUD exports, shows up as a golden diff.
func TestGolden(t *testing.T) {
	got := map[string]any{
		"leaf-permissions.json":   LeafPermissions(),
		"leaf-conn-types.json":    LeafConnectionTypes(),
		"edge-imports.json":       EdgeImports("plant-7", "ACLOUDPUBKEY"),
		"cloud-exports.json":      CloudExports(),
		"control-perms.json":      ControlPermissions(),
		"cloud-roles.json":        cloudRoles(t),
		"enroll-permissions.json": EnrollPermissions(),
	}
	path := filepath.Join("testdata", "contract.txtar")
	ar := &txtar.Archive{Comment: []byte("Golden data-path contract. Regenerate: go test ./contract -update\n")}
	for _, name := range []string{"leaf-permissions.json", "leaf-conn-types.json", "edge-imports.json", "cloud-exports.json", "control-perms.json", "cloud-roles.json", "enroll-permissions.json"} {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		if err := enc.Encode(got[name]); err != nil {
			t.Fatal(err)
		}
		ar.Files = append(ar.Files, txtar.File{Name: name, Data: buf.Bytes()})
	}
	if *update {
		if err := os.WriteFile(path, txtar.Format(ar), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := txtar.ParseFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./contract -update)", err)
	}
	if len(want.Files) != len(ar.Files) {
		t.Fatalf("golden has %d files, want %d (run -update)", len(want.Files), len(ar.Files))
	}
	for i, f := range ar.Files {
		if w := want.Files[i]; w.Name != f.Name || !bytes.Equal(w.Data, f.Data) {
			t.Errorf("%s changed:\n--- got\n%s\n--- want (%s)\n%s", f.Name, f.Data, w.Name, w.Data)
		}
	}
}

// TestCloudExportsIndependentOfEdges: the CLOUD account's exports carry no
// edge name, so its JWT does not grow with the fleet.
func TestCloudExportsIndependentOfEdges(t *testing.T) {
	for _, e := range CloudExports() {
		if bytes.Contains([]byte(e.Subject), []byte("plant")) {
			t.Errorf("export %q names an edge", e.Subject)
		}
	}
}

// TestEdgeImportsStayInTheirSlice: an edge's imports only name its own
// cloud subjects and its own command consumer, never a wildcard over edges.
func TestEdgeImportsStayInTheirSlice(t *testing.T) {
	own := []string{"edges.plant-7.", "$JS.API.CONSUMER.MSG.NEXT.COMMANDS.cmd_plant-7", "$JS.ACK.COMMANDS.cmd_plant-7.", "$TETHER.ENROLL.plant-7"}
	for _, im := range EdgeImports("plant-7", "AC") {
		ok := false
		for _, p := range own {
			ok = ok || strings.HasPrefix(string(im.Subject), p)
		}
		if !ok || strings.Contains(string(im.Subject), "*") {
			t.Errorf("import %q reaches beyond edge plant-7's own subjects", im.Subject)
		}
	}
}

// TestLeafUserCannotEnroll: the edge's running leaf user may not send
// enrollment requests; only an enroll user may, and it may send nothing
// else and receive only its own inbox.
func TestLeafUserCannotEnroll(t *testing.T) {
	for _, s := range LeafPermissions().Pub.Allow {
		if strings.HasPrefix(s, "$TETHER") {
			t.Errorf("leaf user may publish %q", s)
		}
	}
	ep := EnrollPermissions()
	if got := []string(ep.Pub.Allow); len(got) != 1 || got[0] != EnrollSubject {
		t.Errorf("enroll user pub allow = %v, want [%s]", got, EnrollSubject)
	}
	if got := []string(ep.Sub.Allow); len(got) != 1 || got[0] != EnrollInbox+".>" {
		t.Errorf("enroll user sub allow = %v, want [%s.>]", got, EnrollInbox)
	}
}

func cloudRoles(t *testing.T) map[string]any {
	out := map[string]any{}
	for _, r := range Roles() {
		p, err := CloudRolePermissions("dashboard", r, nil)
		if err != nil {
			t.Fatal(err)
		}
		out[r] = p
	}
	p, err := CloudRolePermissions("ops", RoleCommander, []string{"plant-7"})
	if err != nil {
		t.Fatal(err)
	}
	out["commander --edge plant-7"] = p
	return out
}

func TestCloudRoleErrors(t *testing.T) {
	for _, tc := range []struct {
		role  string
		edges []string
		want  string
	}{
		{"root", nil, `role "root": want one of admin, commander, reader`},
		{RoleReader, []string{"plant-7"}, `role "reader": edges can only narrow the "commander" role`},
	} {
		_, err := CloudRolePermissions("dashboard", tc.role, tc.edges)
		if err == nil || err.Error() != tc.want {
			t.Errorf("CloudRolePermissions(%q, %v) = %v, want %q", tc.role, tc.edges, err, tc.want)
		}
	}
}
