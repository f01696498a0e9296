package policy

import (
	"strings"
	"testing"
)

func TestParseExpr(t *testing.T) {
	for _, tc := range []struct {
		in, op string
		key    string
		values []string
	}{
		{"line in (1, 2)", "in", "line", []string{"1", "2"}},
		{"tier notin (pilot)", "notin", "tier", []string{"pilot"}},
		{"site = berlin", "in", "site", []string{"berlin"}},
		{"site != berlin", "notin", "site", []string{"berlin"}},
		{"site", "exists", "site", nil},
		{"!site", "notexists", "site", nil},
	} {
		x, err := parseExpr(tc.in)
		if err != nil || x.Op != tc.op || x.Key != tc.key || strings.Join(x.Values, ",") != strings.Join(tc.values, ",") {
			t.Errorf("parseExpr(%q) = %+v, %v; want %s %s %v", tc.in, x, err, tc.key, tc.op, tc.values)
		}
	}
	for _, bad := range []string{"", "line in 1", "line in (1,)", "= x", "a b", "site == x", "line in (a b)"} {
		if x, err := parseExpr(bad); err == nil {
			t.Errorf("parseExpr(%q) = %+v, want an error", bad, x)
		}
	}
}

func TestParseRate(t *testing.T) {
	for in, want := range map[string]float64{"10": 10, "0.5": 0.5, "10/s": 10, "120/m": 2, "3600/h": 1} {
		if got, err := ParseRate(in); err != nil || got != want {
			t.Errorf("ParseRate(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "0", "-1/s", "fast", "10/d", "NaN", "1e12"} {
		if got, err := ParseRate(bad); err == nil {
			t.Errorf("ParseRate(%q) = %v, want an error", bad, got)
		}
	}
}

// TestGroupSelection: a new edge with the right labels is covered by a
// group's rules without editing them.
func TestGroupSelection(t *testing.T) {
	src := `version: 1
edges:
  ber-1: {labels: {site: berlin, line: "1"}}
  ber-9: {labels: {site: berlin, line: "9", tier: pilot}}
groups:
  berlin-prod:
    match_labels: {site: berlin}
    match_expressions: ["tier notin (pilot)"]
    expose: [vision]
`
	p, diags := Parse("p.yaml", []byte(src))
	if diags.Err() != nil {
		t.Fatal(diags.Err())
	}
	ix := newIndex(p)
	if got := strings.Join(ix.members["berlin-prod"], ","); got != "ber-1" {
		t.Fatalf("berlin-prod = %s, want ber-1", got)
	}
	p2, _ := Parse("p.yaml", []byte(strings.Replace(src, "groups:", "  ber-2: {labels: {site: berlin}}\ngroups:", 1)))
	if got := strings.Join(newIndex(p2).members["berlin-prod"], ","); got != "ber-1,ber-2" {
		t.Fatalf("after adding ber-2, berlin-prod = %s, want ber-1,ber-2", got)
	}
}
