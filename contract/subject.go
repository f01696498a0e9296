package contract

import (
	"errors"
	"fmt"
	"strings"
)

// Publishing on subjects that are not literal.
//
// nats-server stores and delivers a message published on "telemetry.*" or
// "a..b" literally; a subscriber on "edges.*.telemetry.*" would take the
// token "*" for an edge's measurement name. Tether refuses such subjects
// where it can: the CLI before sending, the edge's door with an error to
// the client at publish time (pedantic, forced on every site client). What
// still reaches the buffer (the server routes a message after that error)
// is forwarded on QuarantineSubject, its subject kept in
// HeaderInvalidSubject: never lost, never mistaken for real telemetry.
const (
	// ReservedTelemetryPrefix starts the edge-relative telemetry subjects
	// that are Tether's own: audit records (LocalAuditPrefix), the
	// quarantine and the end-of-batch marker. Site clients may not publish
	// below it; in CLOUD they are edges.<edge>.telemetry._tether.>.
	ReservedTelemetryPrefix = "telemetry._tether."
	// QuarantineSubject is the edge-relative subject on which the
	// forwarder sends a buffered message whose subject is not literal;
	// in the cloud it is edges.<edge>.telemetry._tether.invalid.
	QuarantineSubject = ReservedTelemetryPrefix + "invalid"
	// HeaderInvalidSubject carries such a message's subject as published.
	HeaderInvalidSubject = "Tether-Invalid-Subject"
	// BatchEndSubject is the edge-relative subject of the forwarder's
	// end-of-batch marker (nats-server's fast-batch commit): the stream
	// never stores it, but live subscribers in CLOUD on a wildcard over
	// it receive an empty message there, never on a data subject.
	BatchEndSubject = ReservedTelemetryPrefix + "eob"
)

// CheckPublishSubject refuses a subject no publisher can mean: empty, with
// an empty token (a leading, trailing or doubled dot), a wildcard token
// (* or >) or white space.
func CheckPublishSubject(subject string) error {
	if literalSubject(subject) {
		return nil // the common case, without allocating
	}
	if subject == "" {
		return errors.New("subject is empty: want a subject such as telemetry.temp")
	}
	for _, tok := range strings.Split(subject, ".") {
		switch {
		case tok == "":
			return fmt.Errorf("subject %q has an empty token (a leading, trailing or doubled dot): want tokens separated by single dots", subject)
		case tok == "*" || tok == ">":
			return fmt.Errorf("subject %q has the wildcard %q: publish to a literal subject (wildcards are for subscribing)", subject, tok)
		case strings.ContainsAny(tok, " \t\r\n"):
			return fmt.Errorf("subject %q contains white space", subject)
		}
	}
	return nil
}

// literalSubject reports, in one pass, whether subject is non-empty and
// has no empty token, no wildcard token and no white space.
func literalSubject(subject string) bool {
	start := 0
	for i := 0; i <= len(subject); i++ {
		if i < len(subject) {
			switch subject[i] {
			case ' ', '\t', '\r', '\n':
				return false
			case '.':
			default:
				continue
			}
		}
		tok := subject[start:i]
		if tok == "" || tok == "*" || tok == ">" {
			return false
		}
		start = i + 1
	}
	return true
}
