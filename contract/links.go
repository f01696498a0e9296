package contract

import "time"

// LinksBucket is the CLOUD key-value bucket in which the hubs record, per
// edge account, which run of the edge holds its one link (hub/links.go),
// and the last link they refused for it (RefusedLinkKey). Its entries
// expire 30 s after they were last written.
const LinksBucket = "TETHER_LINKS"

// RefusedLinkKey is the LinksBucket key of the last link the hubs refused
// for an edge account: while another run (or a copy of the edge's creds)
// keeps trying, it is rewritten, so it lives as long as the attempts do.
func RefusedLinkKey(account string) string { return "refused." + account }

// RefusedLink is what the hubs record about a link they refused.
type RefusedLink struct {
	At time.Time `json:"at"`
	// Hub is the hub that refused it; Remote the address it came from.
	Hub    string `json:"hub"`
	Remote string `json:"remote"`
	// Name is the server name the refused link gave.
	Name string `json:"name"`
	// Reason says why: RefusedCopy or RefusedSecondRun.
	Reason string `json:"reason"`
}

// Reasons of a RefusedLink.
const (
	// RefusedCopy: the link gave the live run's server name without its
	// key: a copy of the edge's creds.
	RefusedCopy = "a copy of the edge's creds: the live run's name without its key"
	// RefusedSecondRun: another run of the edge holds the link.
	RefusedSecondRun = "another run of the edge holds the link"
)
