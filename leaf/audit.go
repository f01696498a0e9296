package leaf

import (
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/tether-fabric/tether/contract"
)

// The gateway's audit records are written into the edge's buffer in
// batches: one message per service endpoint holds the records of the calls
// that ended within auditLinger of the first (contract.EncodeAuditRecord
// lines). A record is stored once at the edge and once in the cloud either
// way; per message those two stores, the forwarder's hop and the hub's
// service import cost about as much as the call itself, so under load a
// batch makes them nearly free per record. The linger runs only while a
// record waits (no timer on an idle edge); at most auditLinger of records
// is lost if the process dies, and a shutdown writes what waits.

const (
	// auditLinger is how long a record may wait for others.
	auditLinger = 20 * time.Millisecond
	// auditBatchBytes bounds one batch message (far below
	// contract.SiteMaxMessage).
	auditBatchBytes = 64 << 10
)

type auditLog struct {
	nc     *nats.Conn
	onErr  func(string)
	mu     sync.Mutex
	batch  map[string][]byte // local audit subject -> encoded records
	timer  *time.Timer       // armed while a record waits
	closed bool
}

func newAuditLog(nc *nats.Conn, onErr func(string)) *auditLog {
	return &auditLog{nc: nc, onErr: onErr, batch: map[string][]byte{}}
}

// add queues rec; it is written within auditLinger, or at once when its
// endpoint's batch is full.
func (a *auditLog) add(rec *contract.AuditRecord) {
	subj := contract.LocalAuditSubject(rec.Service, rec.Endpoint)
	line, err := contract.EncodeAuditRecord(rec)
	if err != nil {
		a.onErr("audit record not encoded: " + err.Error())
		return
	}
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		a.publish(subj, line)
		return
	}
	b := append(a.batch[subj], line...)
	if len(b) >= auditBatchBytes {
		delete(a.batch, subj)
		a.mu.Unlock()
		a.publish(subj, b)
		return
	}
	a.batch[subj] = b
	if a.timer == nil {
		a.timer = time.AfterFunc(auditLinger, a.flush)
	}
	a.mu.Unlock()
}

// flush writes every waiting batch.
func (a *auditLog) flush() {
	a.mu.Lock()
	batch := a.batch
	a.batch = map[string][]byte{}
	a.timer = nil
	a.mu.Unlock()
	for subj, b := range batch {
		a.publish(subj, b)
	}
}

// close writes what waits; later records are written one by one.
func (a *auditLog) close() {
	a.mu.Lock()
	a.closed = true
	if a.timer != nil {
		a.timer.Stop()
	}
	a.mu.Unlock()
	a.flush()
	_ = a.nc.Flush()
}

func (a *auditLog) publish(subj string, data []byte) {
	if err := a.nc.Publish(subj, data); err != nil {
		a.onErr("audit records not buffered: " + err.Error())
	}
}
