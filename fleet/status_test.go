package fleet

import (
	"strings"
	"testing"
	"time"

	"github.com/tether-fabric/tether/contract"
)

func TestAssess(t *testing.T) {
	report := func(msgs uint64, oldest string, stalled bool) *contract.StatusReport {
		return &contract.StatusReport{Interval: "5s", StallAfter: "15s",
			Buffer: contract.BufferStatus{BacklogMsgs: msgs, BacklogBytes: msgs * 100, OldestAge: oldest, Stalled: stalled}}
	}
	for _, tc := range []struct {
		name       string
		online     bool
		r          *contract.StatusReport
		age, cloud time.Duration
		state      string
		oldest     string
		reason     string
	}{
		{name: "linked, fresh report, empty buffer", online: true, r: report(0, "", false), age: time.Second, cloud: time.Hour, state: StateOK},
		{name: "linked, no report", online: true, state: StateUnknown, reason: "no status report"},
		{name: "offline, no report", state: StateOffline, reason: "backlog unknown"},
		{name: "offline with backlog: oldest keeps aging", r: report(10, "2s", false), age: 30 * time.Second, state: StateOffline, oldest: "32s", reason: "as reported 30s ago"},
		{name: "linked, report older than 3 intervals", online: true, r: report(0, "", false), age: 16 * time.Second, state: StateStalled, reason: "last report"},
		{name: "edge says stalled", online: true, r: report(5, "20s", true), age: time.Second, cloud: time.Minute, state: StateStalled, reason: "nothing forwarded"},
		{name: "backlog, cloud idle past the threshold", online: true, r: report(5, "16s", false), age: time.Second, cloud: time.Minute, state: StateStalled, reason: "received nothing"},
		{name: "backlog, cloud never received", online: true, r: report(5, "16s", false), age: time.Second, cloud: -1, state: StateStalled},
		{name: "backlog draining: cloud received just now", online: true, r: report(5000, "40s", false), age: time.Second, cloud: 100 * time.Millisecond, state: StateOK},
		{name: "fresh backlog after a long idle", online: true, r: report(3, "10ms", false), age: time.Second, cloud: time.Hour, state: StateOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := EdgeView{Online: tc.online}
			assess(&v, tc.r, tc.age, tc.cloud)
			if v.State != tc.state {
				t.Fatalf("state = %q (%s), want %q", v.State, v.StateReason, tc.state)
			}
			if tc.oldest != "" && v.OldestAge != tc.oldest {
				t.Errorf("oldest age = %q, want %q", v.OldestAge, tc.oldest)
			}
			if !strings.Contains(v.StateReason, tc.reason) {
				t.Errorf("reason = %q, want it to mention %q", v.StateReason, tc.reason)
			}
			if (tc.r == nil) != (v.BacklogMsgs == nil) {
				t.Errorf("backlog_msgs = %v with report %v: unknown must stay null", v.BacklogMsgs, tc.r)
			}
		})
	}
}
