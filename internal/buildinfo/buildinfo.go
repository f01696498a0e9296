// Package buildinfo holds the version stamped into the binary at build time
// (go build -ldflags "-X github.com/tether-fabric/tether/internal/buildinfo.Version=v1.2.3
// -X github.com/tether-fabric/tether/internal/buildinfo.Commit=$(git rev-parse HEAD)").
package buildinfo

import "runtime/debug"

// Version is the release version; "dev" for untagged builds.
var Version = "dev"

// Commit is the source revision stamped with -ldflags -X, for builds that
// carry no VCS stamp of their own (go run, a build outside the git tree,
// an image build); empty when not stamped.
var Commit = ""

// String returns the version with the source revision when known: Go's
// VCS stamp (vcs.revision) when the build has one, else Commit.
func String() string {
	var settings []debug.BuildSetting
	if bi, ok := debug.ReadBuildInfo(); ok {
		settings = bi.Settings
	}
	return format(Version, Commit, settings)
}

func format(version, commit string, settings []debug.BuildSetting) string {
	rev, modified := commit, false
	for _, s := range settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if rev == "" {
		return version
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if modified {
		rev += "-dirty"
	}
	return version + " (" + rev + ")"
}
