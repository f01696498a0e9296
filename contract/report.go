package contract

// The status report an edge publishes to the cloud while it is linked: its
// buffer (the backlog waiting on its disk) and its command path. The leaf
// writes it, the hub's fleet view reads it; the JSON form is the contract
// between the two and between versions, so fields are only ever added.

import (
	"encoding/json"
	"fmt"
	"time"
)

// ReportMaxErrorLen bounds each error text in a report, so a report stays small
// (a few hundred bytes) whatever an error says.
const ReportMaxErrorLen = 256

// BufferStatus is the edge's store-and-forward buffer: what 'tether leaf status'
// shows and what the edge reports to the cloud.
type BufferStatus struct {
	// Backlog is what waits on the edge's disk for the cloud.
	BacklogMsgs  uint64 `json:"backlog_msgs"`
	BacklogBytes uint64 `json:"backlog_bytes"`
	// OldestAge is how long the oldest buffered message has waited, as a
	// Go duration; empty when the backlog is empty.
	OldestAge   string    `json:"oldest_age,omitempty"`
	Forwarded   uint64    `json:"forwarded"`
	LastForward time.Time `json:"last_forward,omitzero"`
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
	// Stalled is true when there is a backlog and the link is up, but
	// nothing reached the cloud for the edge's stall_after.
	Stalled bool `json:"stalled"`
	// Full is true when the buffer is at (95% of) its byte budget.
	Full bool `json:"full"`
	// MaxBytes is the buffer's byte budget in effect (it may be below the
	// configured one when the filesystem is smaller).
	MaxBytes int64 `json:"max_bytes"`
	// DiskFree is the free space of the filesystem holding the buffer.
	DiskFree uint64 `json:"disk_free_bytes,omitempty"`
	Origin   string `json:"origin"`
}

// Oldest returns OldestAge as a duration (0 when empty or unreadable).
func (b BufferStatus) Oldest() time.Duration {
	d, _ := time.ParseDuration(b.OldestAge)
	return d
}

// Commands is the edge's command path.
type CommandStatus struct {
	Delivered uint64 `json:"delivered"`
	LastSeq   uint64 `json:"last_cloud_seq"`
	LastError string `json:"last_error,omitempty"`
}

// StatusReport is one status report of an edge.
type StatusReport struct {
	Edge    string `json:"edge"`
	Version string `json:"version"`
	// ReportedAt is when the edge made the report, by the edge's clock.
	ReportedAt time.Time `json:"reported_at"`
	// Interval is how often the edge reports while linked (a Go duration).
	Interval string `json:"interval"`
	// StallAfter is how long the edge lets a backlog go without progress
	// before it calls the transfer stalled (a Go duration).
	StallAfter string `json:"stall_after"`
	// LinkedSince is when the edge's current link came up (edge clock).
	LinkedSince time.Time     `json:"linked_since,omitzero"`
	Buffer      BufferStatus  `json:"buffer"`
	Commands    CommandStatus `json:"commands"`
	// Services are the services the edge exposes and runs (its gateway's
	// discovery), for the fleet's service table.
	Services []EdgeService `json:"services,omitempty"`
}

// Durations returns Interval and StallAfter, with def for a missing or bad
// value.
func (r StatusReport) Durations(defInterval, defStall time.Duration) (interval, stall time.Duration) {
	interval, stall = defInterval, defStall
	if d, err := time.ParseDuration(r.Interval); err == nil && d > 0 {
		interval = d
	}
	if d, err := time.ParseDuration(r.StallAfter); err == nil && d > 0 {
		stall = d
	}
	return interval, stall
}

// MarshalReport encodes r, with error texts cut to ReportMaxErrorLen.
func MarshalReport(r StatusReport) ([]byte, error) {
	r.Buffer.LastError = clipReportError(r.Buffer.LastError)
	r.Commands.LastError = clipReportError(r.Commands.LastError)
	return json.Marshal(r)
}

// UnmarshalReport decodes a report.
func UnmarshalReport(data []byte) (StatusReport, error) {
	var r StatusReport
	if err := json.Unmarshal(data, &r); err != nil {
		return r, fmt.Errorf("edge status report: %w", err)
	}
	return r, nil
}

func clipReportError(s string) string {
	if len(s) <= ReportMaxErrorLen {
		return s
	}
	return s[:ReportMaxErrorLen-3] + "..."
}
