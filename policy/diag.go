package policy

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Severities of a diagnostic.
const (
	SeverityError   = "error"
	SeverityWarning = "warning"
)

// Diagnostic is one problem found in a policy file.
type Diagnostic struct {
	File     string `json:"file"`
	Pos      Pos    `json:"pos"`
	Severity string `json:"severity"`
	Message  string `json:"message"`
}

func (d Diagnostic) String() string {
	return fmt.Sprintf("%s:%d:%d: %s: %s", d.File, d.Pos.Line, d.Pos.Col, d.Severity, d.Message)
}

// Diagnostics are every problem found, sorted by position.
type Diagnostics []Diagnostic

// ErrInvalid is wrapped by Diagnostics.Err when there is at least one error.
var ErrInvalid = errors.New("invalid policy")

// Errors returns the diagnostics of severity error.
func (ds Diagnostics) Errors() Diagnostics { return ds.filter(SeverityError) }

// Warnings returns the diagnostics of severity warning.
func (ds Diagnostics) Warnings() Diagnostics { return ds.filter(SeverityWarning) }

func (ds Diagnostics) filter(sev string) Diagnostics {
	var out Diagnostics
	for _, d := range ds {
		if d.Severity == sev {
			out = append(out, d)
		}
	}
	return out
}

// Err returns nil when there is no error, else an error listing every
// error (warnings are not errors).
func (ds Diagnostics) Err() error {
	errs := ds.Errors()
	if len(errs) == 0 {
		return nil
	}
	lines := make([]string, len(errs))
	for i, d := range errs {
		lines[i] = d.String()
	}
	return fmt.Errorf("%w: %d error(s):\n%s", ErrInvalid, len(errs), strings.Join(lines, "\n"))
}

func (ds Diagnostics) sorted() Diagnostics {
	out := append(Diagnostics(nil), ds...)
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Pos.Line != b.Pos.Line {
			return a.Pos.Line < b.Pos.Line
		}
		if a.Pos.Col != b.Pos.Col {
			return a.Pos.Col < b.Pos.Col
		}
		return a.Message < b.Message
	})
	return out
}

type reporter struct {
	file  string
	diags Diagnostics
}

func (r *reporter) errorf(p Pos, format string, args ...any) {
	r.diags = append(r.diags, Diagnostic{File: r.file, Pos: p, Severity: SeverityError, Message: fmt.Sprintf(format, args...)})
}

func (r *reporter) warnf(p Pos, format string, args ...any) {
	r.diags = append(r.diags, Diagnostic{File: r.file, Pos: p, Severity: SeverityWarning, Message: fmt.Sprintf(format, args...)})
}
