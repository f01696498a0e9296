package contract

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/tools/txtar"
)

// TestPolicyGolden pins the subjects the access policy compiles to: any
// change to what a policy grant lets a principal or an edge reach shows up
// as a golden diff (go test ./contract -update).
func TestPolicyGolden(t *testing.T) {
	got := []struct {
		name string
		v    any
	}{
		{"telemetry-read-narrowed.json", CloudTelemetryReadPermissions(UserNameTemplate, []string{"plant-8", "plant-7"})},
		{"group-read.json", CloudGroupReadPermissions(UserNameTemplate, "berlin")},
		{"group-commands.json", CloudGroupCommandPermissions(UserNameTemplate, "berlin", []string{"reboot", "config.>"})},
		{"command-base.json", CloudCommandBasePermissions(UserNameTemplate)},
		{"command-subject.json", []string{CloudCommandSubjectFor("plant-7", "config.>"), CloudCommandSubjectFor("*", "reboot")}},
		{"serve.json", CloudServePermissions("billing")},
		{"service-call.json", CloudServiceCallPermissions(UserNameTemplate, []string{CloudServiceCallSubject("plant-7", "vision"), CloudServiceCallSubject("*", "echo")})},
		{"leaf-permissions-for.json", LeafPermissionsFor("plant-7", []string{"billing"}, []string{"plant-8"})},
	}
	path := filepath.Join("testdata", "policy.txtar")
	ar := &txtar.Archive{Comment: []byte("Golden subjects of the access policy. Regenerate: go test ./contract -update\n")}
	for _, g := range got {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		if err := enc.Encode(g.v); err != nil {
			t.Fatal(err)
		}
		ar.Files = append(ar.Files, txtar.File{Name: g.name, Data: buf.Bytes()})
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

// TestPolicySubjectsStayInTheirSlice: what a policy grant gives an edge
// names only that edge (its own cloud subjects) or the peer it names; with
// no calls and no peers the leaf's permissions are the contract's.
func TestPolicySubjectsStayInTheirSlice(t *testing.T) {
	for _, s := range LeafPermissionsFor("plant-7", []string{"billing"}, []string{"plant-8"}).Pub.Allow {
		if strings.HasPrefix(s, SvcPrefix+"out.") && !strings.HasPrefix(s, ServiceOutSubject("plant-7", "")) {
			t.Errorf("plant-7's leaf may publish %q, outside its own calls", s)
		}
	}
	for _, s := range LeafPermissions().Pub.Allow {
		if strings.HasPrefix(s, SvcPrefix+"out.") {
			t.Errorf("an edge's leaf may call %q with no policy grant", s)
		}
	}
	a, _ := json.Marshal(LeafPermissionsFor("plant-7", nil, nil))
	b, _ := json.Marshal(LeafPermissions())
	if !bytes.Equal(a, b) {
		t.Errorf("LeafPermissionsFor(plant-7, nil, nil) = %s, want LeafPermissions() = %s", a, b)
	}
	for _, s := range CloudTelemetryReadPermissions("dashboard", []string{"plant-7"}).Sub.Allow {
		if strings.Contains(s, "*") {
			t.Errorf("narrowed reader may subscribe %q", s)
		}
	}
}

// TestGroupReadStaysInItsGroup: a group reader's permissions name only its
// group's stream and live subjects, its own consumers and inbox: no other
// stream, no edge subject.
func TestGroupReadStaysInItsGroup(t *testing.T) {
	p := CloudGroupReadPermissions("dash", "berlin")
	for _, s := range p.Pub.Allow {
		if s != "$JS.API.INFO" && !strings.Contains(s, "."+GroupStream("berlin")+".") && !strings.HasSuffix(s, "."+GroupStream("berlin")) {
			t.Errorf("group reader may publish %q, outside its group's stream", s)
		}
		if strings.Contains(s, ".CONSUMER.") && !strings.Contains(s, ".dash_") {
			t.Errorf("group reader may publish %q, on a consumer it does not own", s)
		}
	}
	for _, s := range p.Sub.Allow {
		if s != GroupLiveSubject("berlin") && s != CloudInbox("dash") {
			t.Errorf("group reader may subscribe %q", s)
		}
	}
	for _, s := range CloudGroupCommandPermissions("ops", "berlin", []string{"reboot"}).Pub.Allow {
		if !strings.HasPrefix(s, GroupPrefix+"berlin.edges.*.cmd.") && !strings.HasPrefix(s, "$JS.API.") {
			t.Errorf("group commander may publish %q, outside its group's commands", s)
		}
	}
}
