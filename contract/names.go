package contract

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// Well-known account names.
const (
	SystemAccountName = "SYS"
	CloudAccountName  = "CLOUD"
	edgeAccountPrefix = "EDGE_"
)

// ErrInvalidEdgeName reports an edge name that is not a lowercase DNS label.
var ErrInvalidEdgeName = errors.New("invalid edge name")

// ErrInvalidUserName reports a user name that is not a lowercase DNS label.
var ErrInvalidUserName = errors.New("invalid user name")

var edgeNameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// ValidateEdgeName checks that name is a lowercase DNS label: 1 to 63
// characters from a-z, 0-9 and '-', not starting or ending with '-'.
func ValidateEdgeName(name string) error { return validateLabel(ErrInvalidEdgeName, name, "plant-7") }

// ValidateUserName checks a cloud user name like an edge name.
func ValidateUserName(name string) error { return validateLabel(ErrInvalidUserName, name, "dashboard") }

func validateLabel(kind error, name, example string) error {
	if !edgeNameRE.MatchString(name) {
		return fmt.Errorf("%w %q: want a lowercase DNS label (1-63 of a-z, 0-9, '-', not starting or ending with '-'), e.g. %s", kind, name, example)
	}
	return nil
}

// EdgeAccountName returns the account name of an edge: EDGE_<name>.
func EdgeAccountName(edge string) string { return edgeAccountPrefix + edge }

// EdgeOfAccountName returns the edge of an account name EDGE_<edge>, or ""
// for another account.
func EdgeOfAccountName(account string) string {
	edge, ok := strings.CutPrefix(account, edgeAccountPrefix)
	if !ok {
		return ""
	}
	return edge
}
