package hub

import (
	_ "embed"

	"github.com/tether-fabric/tether/internal/configdoc"
)

//go:embed config.go
var configSource []byte

// ConfigDocs returns, for each config key, the first sentence of its
// field's doc comment in config.go: the help lists every key from the type
// itself.
func ConfigDocs() (map[string]string, error) { return configdoc.Summaries(configSource, "Config") }
