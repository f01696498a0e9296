package buildinfo

import (
	"runtime/debug"
	"testing"
)

// TestFormat: the version names the source revision: Go's VCS stamp when
// the build has one, else the commit stamped with -ldflags -X, else none.
func TestFormat(t *testing.T) {
	const full = "0123456789abcdef0123456789abcdef01234567"
	vcs := []debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: "fedcba9876543210fedcba9876543210fedcba98"}}
	for _, tc := range []struct {
		name, commit string
		settings     []debug.BuildSetting
		want         string
	}{
		{"no stamp at all", "", nil, "dev"},
		{"stamped with -X only", full, nil, "dev (0123456789ab)"},
		{"short -X stamp", "abc1234", nil, "dev (abc1234)"},
		{"VCS stamp wins", full, vcs, "dev (fedcba987654)"},
		{"VCS stamp, modified tree", "", append(vcs, debug.BuildSetting{Key: "vcs.modified", Value: "true"}), "dev (fedcba987654-dirty)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := format("dev", tc.commit, tc.settings); got != tc.want {
				t.Errorf("format = %q, want %q", got, tc.want)
			}
		})
	}
}
