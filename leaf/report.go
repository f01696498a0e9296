package leaf

import (
	"context"
	"fmt"
	"time"

	"github.com/tether-fabric/tether/contract"
	"github.com/tether-fabric/tether/internal/buildinfo"
)

// The edge reports its status to the cloud so the fleet view can show
// what only the edge knows: the backlog on its disk and why it is not
// moving. Reports are core publishes on contract.UplinkStatus (edges.<edge>.status
// in CLOUD, where the stream EDGE_STATUS keeps the last one per edge): a
// lost report is replaced by the next one, and reports never queue behind
// buffered telemetry.

// reportResend is when, after the link comes up, the first report is sent
// again: the hub's interest in the subject may still be on its way when
// the first one goes out.
const reportResend = time.Second

// Report returns the status report the edge would send now.
func (s *Server) Report(ctx context.Context) contract.StatusReport {
	var since time.Time
	if l := s.Link(); l.Connected {
		since = l.Since.UTC()
	}
	return contract.StatusReport{
		LinkedSince: since,
		Edge:        s.bundle.Edge,
		Version:     buildinfo.Version,
		ReportedAt:  time.Now().UTC(),
		Interval:    s.cfg.StatusInterval.String(),
		StallAfter:  s.cfg.StallAfter.String(),
		Buffer:      s.up.Status(ctx),
		Commands:    s.down.status(),
		Services:    capServices(s.gw.exposed()),
	}
}

// reportLoop publishes a report while the link is up: at once on link-up
// (and again reportResend later), every StatusInterval, and whenever the
// buffer turns stalled, full or empty or a last error changes. Linked or
// not, it logs when the buffer turns full and when it has room again.
//
// It looks every 250ms, and reads the buffer stream (a JetStream API
// request) only when something a report shows may have changed: while the
// buffer was empty at the last reading and the edge's stored bytes and the
// last errors are the same (quietKey), the buffer is still empty, not
// stalled and not full, so an idle edge reads it once per StatusInterval.
// While quiet it looks every second instead (a buffer that fills is then
// reported up to a second later; a link change wakes it at once).
func (s *Server) reportLoop(ctx context.Context) {
	poll := min(250*time.Millisecond, s.cfg.StatusInterval/2)
	quietPoll := min(time.Second, s.cfg.StatusInterval/2)
	t := time.NewTimer(poll)
	defer t.Stop()
	var (
		linked   bool
		full     bool
		sent     time.Time // last report sent
		resendAt time.Time // zero: no resend pending
		lastKey  string
		quiet    string // quietKey at the last reading of an empty buffer; "" after any other
	)
	for {
		wait := poll
		if quiet != "" {
			wait = quietPoll
			// Never sooner than poll: a report that cannot be sent is
			// retried at the usual pace, not in a busy loop.
			if linked {
				wait = min(wait, max(poll, time.Until(sent.Add(s.cfg.StatusInterval))))
			}
			if !resendAt.IsZero() {
				wait = min(wait, max(poll, time.Until(resendAt)))
			}
		}
		t.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.linkChanged:
		}
		now := time.Now()
		isLinked := s.Link().Connected
		resend := !resendAt.IsZero() && !now.Before(resendAt)
		due := isLinked && (!linked || now.Sub(sent) >= s.cfg.StatusInterval || resend)
		qk := s.quietKey()
		if !due && linked == isLinked && quiet != "" && qk == quiet {
			continue // nothing a report shows can have changed
		}
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		r := s.Report(rctx)
		cancel()
		quiet = ""
		if r.Buffer.BacklogMsgs == 0 && !r.Buffer.Full {
			quiet = qk
		}
		if r.Buffer.Full != full {
			full = r.Buffer.Full
			s.logFull(r.Buffer)
		}
		if !isLinked {
			linked = false
			continue
		}
		key := changeKey(r)
		due = due || key != lastKey
		if !linked {
			resendAt = now.Add(reportResend)
		} else if resend {
			resendAt = time.Time{}
		}
		linked, lastKey = true, key
		if !due {
			continue
		}
		if err := s.publishReport(r); err != nil {
			s.log.Debug("status report not sent", "err", err)
			continue
		}
		sent = now
	}
}

// quietKey is what the report loop reads on every poll, cheaply: the bytes
// the edge's JetStream holds (any store or purge in the buffer or the
// COMMANDS stream changes them), the forwarder's and the downlink's last
// errors, and the exposed services the gateway found (a service started
// at the site is reported when discovered, not at the next StatusInterval;
// none without a gateway configuration).
func (s *Server) quietKey() string {
	upErr, upErrAt := s.up.LastError()
	stored := s.ns.GlobalAccount().JetStreamUsage().Store
	return fmt.Sprint(stored, upErr, upErrAt.UnixNano(), s.down.status().LastError, s.gw.exposed())
}

// logFull logs a change of the buffer's full state: a full buffer is
// where a publisher notices trouble first.
func (s *Server) logFull(b UplinkStatus) {
	if b.Full {
		s.log.Warn("telemetry buffer full", "backlog_msgs", b.BacklogMsgs, "backlog_bytes", b.BacklogBytes,
			"budget_bytes", b.MaxBytes, "disk_free_bytes", b.DiskFree, "when_full", s.cfg.BufferFull)
		return
	}
	s.log.Info("telemetry buffer has room again", "backlog_bytes", b.BacklogBytes, "budget_bytes", b.MaxBytes)
}

// changeKey is what, when it changes, makes the edge report at once.
func changeKey(r contract.StatusReport) string {
	b := r.Buffer
	return fmt.Sprint(b.Stalled, b.Full, b.BacklogMsgs == 0, b.LastError, b.LastErrorAt.UnixNano(), r.Commands.LastError, r.Services)
}

func (s *Server) publishReport(r contract.StatusReport) error {
	data, err := contract.MarshalReport(r)
	if err != nil {
		return err
	}
	return s.nc.Publish(contract.UplinkStatus, data)
}

// maxReportedServices bounds the services in one report, so a report
// stays small whatever runs at the site.
const maxReportedServices = 256

func capServices(v []contract.EdgeService) []contract.EdgeService {
	if len(v) > maxReportedServices {
		return v[:maxReportedServices]
	}
	return v
}
