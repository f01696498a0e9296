package leaf

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/tether-fabric/tether/contract"
)

// TestAuditLogBatches: records of one endpoint that end close together
// travel as one message, each endpoint's in its own, in order; a batch
// that reaches auditBatchBytes goes at once; close writes what waits.
func TestAuditLogBatches(t *testing.T) {
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	defer ns.Shutdown()
	if !ns.ReadyForConnections(5 * time.Second) {
		t.Fatal("server not ready")
	}
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	sub, err := nc.SubscribeSync(contract.LocalAuditPrefix + ">")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu   sync.Mutex
		errs []string
	)
	a := newAuditLog(nc, func(s string) { mu.Lock(); errs = append(errs, s); mu.Unlock() })
	next := func() (string, []contract.AuditRecord) {
		t.Helper()
		m, err := sub.NextMsg(2 * time.Second)
		if err != nil {
			t.Fatalf("no audit message: %v", err)
		}
		recs, err := contract.DecodeAuditRecords(m.Data)
		if err != nil {
			t.Fatal(err)
		}
		return m.Subject, recs
	}

	for i := range 10 {
		a.add(&contract.AuditRecord{Service: "echo", Endpoint: "get", LatencyUS: int64(i)})
	}
	a.add(&contract.AuditRecord{Service: "sensor", Endpoint: "read"})
	got := map[string][]contract.AuditRecord{}
	for range 2 {
		subj, recs := next()
		got[subj] = recs
	}
	if recs := got[contract.LocalAuditSubject("echo", "get")]; len(recs) != 10 || recs[9].LatencyUS != 9 {
		t.Errorf("echo.get: %d records (%+v), want the 10 in one message, in order", len(recs), recs)
	}
	if recs := got[contract.LocalAuditSubject("sensor", "read")]; len(recs) != 1 {
		t.Errorf("sensor.read: %d records, want 1", len(recs))
	}

	// A full batch goes at once: k records reach auditBatchBytes.
	big := &contract.AuditRecord{Service: "echo", Endpoint: "get", Error: strings.Repeat("x", 1024)}
	line, _ := contract.EncodeAuditRecord(big)
	k := (auditBatchBytes + len(line) - 1) / len(line)
	start := time.Now()
	for range k {
		a.add(big)
	}
	if _, recs := next(); len(recs) != k {
		t.Errorf("full batch: %d records, want %d (adding them took %s)", len(recs), k, time.Since(start))
	}

	// Close writes what waits, at once.
	a.add(&contract.AuditRecord{Service: "echo", Endpoint: "put"})
	a.close()
	if subj, recs := next(); subj != contract.LocalAuditSubject("echo", "put") || len(recs) != 1 {
		t.Errorf("after close: %s with %d records, want echo.put with 1", subj, len(recs))
	}
	mu.Lock()
	defer mu.Unlock()
	if len(errs) > 0 {
		t.Errorf("errors: %v", errs)
	}
}
