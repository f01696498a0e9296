package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tether-fabric/tether/contract"
	"github.com/tether-fabric/tether/internal/sysreq"
)

// EdgeView is one edge as the cloud sees it: its link (from the hubs'
// leafnode tables, not from anything the edge reports), its cloud-side
// queues, and what the edge last reported about its own buffer. The
// backlog on the edge (messages, bytes, age of the oldest) is the edge's
// lag into the cloud, as of its last report.
type EdgeView struct {
	Edge    string `json:"edge"`
	Account string `json:"account"`
	Online  bool   `json:"online"`
	// Hub is the hub the edge is attached to; RTT as that hub measures it.
	Hub string `json:"hub,omitempty"`
	RTT string `json:"rtt,omitempty"`
	// Transport is "tls" or "websocket" while online.
	Transport string `json:"transport,omitempty"`
	// CommandsWaiting are commands queued in the cloud for the edge.
	CommandsWaiting uint64 `json:"commands_waiting"`
	// TelemetryMsgs is how many of the edge's messages the CLOUD telemetry
	// stream holds.
	TelemetryMsgs uint64 `json:"telemetry_msgs"`
	// CloudLastReceived is when the cloud last stored telemetry of the edge.
	CloudLastReceived time.Time `json:"cloud_last_received,omitzero"`

	// State sums the edge up: StateOK, StateStalled, StateOffline or
	// StateUnknown; StateReason says why when it is not ok.
	State       string `json:"state"`
	StateReason string `json:"state_reason,omitempty"`

	// The rest is the edge's last status report; null or empty when the
	// cloud holds none. Backlog is what waits on the edge's disk for the
	// cloud; while the edge is offline OldestAge keeps growing from the
	// reported value (nothing can leave the edge).
	BacklogMsgs  *uint64   `json:"backlog_msgs"`
	BacklogBytes *uint64   `json:"backlog_bytes"`
	OldestAge    string    `json:"oldest_age,omitempty"`
	Forwarded    uint64    `json:"forwarded"`
	LastError    string    `json:"last_error,omitempty"`
	LastErrorAt  time.Time `json:"last_error_at,omitzero"`
	// BudgetBytes is the edge's buffer budget in effect (the configured
	// one, or less where the edge fitted it to its disk).
	BudgetBytes *int64 `json:"budget_bytes"`
	// Stalled and Full are as the edge reported them.
	Stalled bool `json:"stalled"`
	Full    bool `json:"full"`
	// Services is how many exposed services the edge last reported
	// running (its gateway's discovery).
	Services int `json:"services"`
	// ReportedAt is when the edge made the report (edge clock); ReportAge
	// how long ago the cloud stored it (cloud clock).
	ReportedAt  time.Time `json:"reported_at,omitzero"`
	ReportAge   string    `json:"report_age,omitempty"`
	EdgeVersion string    `json:"edge_version,omitempty"`
	// Since is, while online, when the current link came up (as the edge
	// reported it); while offline, when the edge was last heard of (its
	// last report).
	Since time.Time `json:"since,omitzero"`

	// RefusedLink is the last link the hubs refused for this edge within
	// the last 30 s: another run of it, or a copy of its creds (the hubs
	// rewrite it while the attempts go on); nil when none.
	RefusedLink *contract.RefusedLink `json:"refused_link,omitempty"`

	Error string `json:"error,omitempty"`
}

// Edge states in the fleet view.
const (
	StateOK      = "ok"
	StateStalled = "stalled"
	StateOffline = "offline"
	StateUnknown = "unknown"
)

// Defaults for reports that do not say their interval or stall threshold.
const (
	defaultReportInterval = 5 * time.Second
	defaultStallAfter     = 15 * time.Second
	// staleReports is how many report intervals may pass, with the link
	// up, before the edge is called stalled.
	staleReports = 3
)

type leafzReply struct {
	Server struct {
		Name string `json:"name"`
	} `json:"server"`
	Data struct {
		Leafs []struct {
			RTT       string `json:"rtt"`
			Websocket bool   `json:"websocket"`
		} `json:"leafs"`
	} `json:"data"`
}

// Fleet reports every edge as the hubs see it. sys is a system-account
// connection (for the hubs' LEAFZ), cloud a CLOUD-account connection (for
// the streams). accounts maps edge names to account public keys.
func Fleet(ctx context.Context, sys, cloud *nats.Conn, accounts map[string]string, names []string) ([]EdgeView, error) {
	js, err := jetstream.NewWithDomain(cloud, contract.CloudDomain)
	if err != nil {
		return nil, err
	}
	var counts map[string]uint64
	var telemetry, statusStream jetstream.Stream
	if st, err := js.Stream(ctx, contract.EdgeStatusStream); err == nil {
		statusStream = st
	}
	if st, err := js.Stream(ctx, contract.TelemetryStream); err == nil {
		telemetry = st
		if info, err := st.Info(ctx, jetstream.WithSubjectFilter(contract.CloudTelemetryAll)); err == nil {
			counts = map[string]uint64{}
			for subj, n := range info.State.Subjects {
				counts[contract.EdgeOfSubject(subj)] += n
			}
		}
	}
	links, _ := js.KeyValue(ctx, contract.LinksBucket) // nil: no hub guards links yet
	var out []EdgeView
	for _, name := range names {
		v := EdgeView{Edge: name, Account: accounts[name], TelemetryMsgs: counts[name]}
		ectx, cancel := context.WithTimeout(ctx, time.Second)
		err := sysreq.Gather(ectx, sys, fmt.Sprintf("$SYS.REQ.ACCOUNT.%s.LEAFZ", v.Account), nil, 250*time.Millisecond, 0, func(data []byte) {
			var r leafzReply
			if json.Unmarshal(data, &r) != nil || len(r.Data.Leafs) == 0 {
				return
			}
			l := r.Data.Leafs[0]
			v.Online, v.Hub, v.RTT, v.Transport = true, r.Server.Name, l.RTT, "tls"
			if l.Websocket {
				v.Transport = "websocket"
			}
		})
		cancel()
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			v.Error = err.Error()
		}
		var report *contract.StatusReport
		var reportAge time.Duration
		if statusStream != nil {
			if m, err := statusStream.GetLastMsgForSubject(ctx, contract.CloudStatusSubject(name)); err == nil {
				if r, err := contract.UnmarshalReport(m.Data); err == nil {
					report, reportAge = &r, max(0, time.Since(m.Time))
				} else {
					v.Error = err.Error()
				}
			}
		}
		cloudLast := time.Duration(-1)
		if telemetry != nil {
			if m, err := telemetry.GetLastMsgForSubject(ctx, contract.CloudTelemetrySubject(name)); err == nil {
				v.CloudLastReceived = m.Time
				cloudLast = max(0, time.Since(m.Time))
			}
		}
		assess(&v, report, reportAge, cloudLast)
		if links != nil {
			if e, err := links.Get(ctx, contract.RefusedLinkKey(v.Account)); err == nil {
				var r contract.RefusedLink
				if json.Unmarshal(e.Value(), &r) == nil {
					v.RefusedLink = &r
				}
			}
		}
		if ci, err := js.Consumer(ctx, contract.CommandsStream, contract.CommandConsumer(name)); err == nil {
			info := ci.CachedInfo()
			v.CommandsWaiting = info.NumPending + uint64(info.NumAckPending)
		} else if !errors.Is(err, jetstream.ErrConsumerNotFound) {
			// Not found: the hubs make an edge's queue when they first learn
			// of it, so none is waiting (an edge that never linked).
			v.Error = fmt.Sprintf("command queue: %v", err)
		}
		out = append(out, v)
	}
	return out, nil
}

// assess fills in v's report fields and its state from the hubs' view of
// the link (v.Online), the edge's last report (nil: none) and its age, and
// how long ago the cloud last stored telemetry of the edge (< 0: never).
// Nothing unknown is shown as healthy: no report means StateUnknown.
func assess(v *EdgeView, r *contract.StatusReport, reportAge, cloudLast time.Duration) {
	if r != nil {
		b := r.Buffer
		v.BacklogMsgs, v.BacklogBytes = &b.BacklogMsgs, &b.BacklogBytes
		v.OldestAge, v.Forwarded = b.OldestAge, b.Forwarded
		v.LastError, v.LastErrorAt = b.LastError, b.LastErrorAt
		v.Stalled, v.Full = b.Stalled, b.Full
		v.Services = len(r.Services)
		if b.MaxBytes > 0 {
			v.BudgetBytes = &b.MaxBytes
		}
		v.ReportedAt, v.ReportAge, v.EdgeVersion = r.ReportedAt, reportAge.Round(time.Millisecond).String(), r.Version
		v.Since = r.ReportedAt
		if v.Online && !r.LinkedSince.IsZero() {
			v.Since = r.LinkedSince
		}
	}
	switch {
	case !v.Online:
		v.State, v.StateReason = StateOffline, "link down"
		switch {
		case r == nil:
			v.StateReason += "; the edge never reported: backlog unknown"
		case r.Buffer.BacklogMsgs > 0:
			// Nothing leaves an offline edge: its oldest message keeps aging.
			v.OldestAge = (r.Buffer.Oldest() + reportAge).Round(time.Millisecond).String()
			v.StateReason += fmt.Sprintf("; backlog as reported %s ago", v.ReportAge)
		}
		return
	case r == nil:
		v.State, v.StateReason = StateUnknown, "link up but no status report from the edge"
		return
	}
	interval, stall := r.Durations(defaultReportInterval, defaultStallAfter)
	oldest := r.Buffer.Oldest() + reportAge
	switch {
	case reportAge > staleReports*interval:
		v.State = StateStalled
		v.StateReason = fmt.Sprintf("link up but the last report is %s old (the edge reports every %s)", v.ReportAge, interval)
	case r.Buffer.Stalled:
		v.State = StateStalled
		v.StateReason = "the edge reports nothing forwarded for " + stall.String()
		if r.Buffer.LastError != "" {
			v.StateReason += ": " + r.Buffer.LastError
		}
	case r.Buffer.BacklogMsgs > 0 && oldest > stall && (cloudLast < 0 || cloudLast > stall):
		v.State = StateStalled
		v.StateReason = fmt.Sprintf("%d messages waiting on the edge, the cloud received nothing from it for %s", r.Buffer.BacklogMsgs, stall)
	default:
		v.State = StateOK
	}
}
