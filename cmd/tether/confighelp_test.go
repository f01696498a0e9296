package main

import (
	"reflect"
	"strings"
	"testing"

	"github.com/tether-fabric/tether/hub"
	"github.com/tether-fabric/tether/leaf"
)

// TestHelpListsEveryConfigKey: 'tether leaf --help' and 'tether hub --help'
// name every key of their config type, its environment variable and its
// field's documentation, so the help cannot leave a key out.
func TestHelpListsEveryConfigKey(t *testing.T) {
	leafDocs, err := leaf.ConfigDocs()
	if err != nil {
		t.Fatal(err)
	}
	hubDocs, err := hub.ConfigDocs()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		cmd  string
		cfg  any
		docs map[string]string
	}{
		{"leaf", &leaf.Config{}, leafDocs},
		{"hub", &hub.Config{}, hubDocs},
	} {
		t.Run(tc.cmd, func(t *testing.T) {
			code, help, stderr := runCLI(t, tc.cmd, "--help")
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			known := map[string]reflect.Type{}
			collectKeys(reflect.TypeOf(tc.cfg).Elem(), "", known)
			if len(known) < 10 {
				t.Fatalf("%d keys in the %s config, want the whole type", len(known), tc.cmd)
			}
			for k := range known {
				if !strings.Contains(help, "\n  "+k+"  "+envName(k)+"  [") {
					t.Errorf("%s --help does not list key %s with %s", tc.cmd, k, envName(k))
				}
				doc := tc.docs[k]
				if doc == "" {
					t.Errorf("%s: key %s has no doc comment", tc.cmd, k)
					continue
				}
				if first := strings.Fields(doc)[0]; !strings.Contains(help, first) {
					t.Errorf("%s --help lacks key %s's doc %q", tc.cmd, k, doc)
				}
			}
		})
	}
}
