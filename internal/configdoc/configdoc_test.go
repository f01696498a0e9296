package configdoc

import "testing"

const src = `package x

type Config struct {
	// Name is the server name, e.g. "hub-1". Default "hub-1".
	Name string ` + "`mapstructure:\"name\"`" + `
	// Transport: how the edge reaches the hubs, i.e. tls or websocket.
	// More text.
	Transport string ` + "`mapstructure:\"transport\"`" + `
	// Compression of the link.
	Compression string ` + "`mapstructure:\"compression\"`" + `
	// Cluster settings.
	Cluster ClusterConfig ` + "`mapstructure:\"cluster\"`" + `
	// internal has no tag: not a key.
	internal int
}

type ClusterConfig struct {
	// Routes are the other hubs' route URLs.
	Routes []string ` + "`mapstructure:\"routes\"`" + `
}
`

// TestSummaries: every tagged field is a key (nested structs dotted), with
// its doc's first sentence ("e.g." and "i.e." do not end it) and without a
// leading "<Name> is" or "<Name>:".
func TestSummaries(t *testing.T) {
	got, err := Summaries([]byte(src), "Config")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"name":           `the server name, e.g. "hub-1"`,
		"transport":      "how the edge reaches the hubs, i.e. tls or websocket",
		"compression":    "Compression of the link",
		"cluster.routes": "the other hubs' route URLs",
	}
	if len(got) != len(want) {
		t.Errorf("keys %v, want %v", got, want)
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s: %q, want %q", k, got[k], w)
		}
	}
	if _, err := Summaries([]byte(src), "Missing"); err == nil {
		t.Error("a missing type: no error")
	}
}
