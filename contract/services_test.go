package contract

import (
	"strings"
	"testing"
)

// TestServicesConstantSize: the CLOUD and SVC accounts' service imports and
// exports name no edge, so their JWTs do not grow with the fleet.
func TestServicesConstantSize(t *testing.T) {
	var subjects []string
	for _, e := range ServiceExports() {
		subjects = append(subjects, string(e.Subject))
	}
	for _, e := range CloudServiceExports() {
		subjects = append(subjects, string(e.Subject))
	}
	for _, im := range append(CloudServiceImports("ASVC"), ServiceImports("ACLOUD")...) {
		subjects = append(subjects, string(im.Subject))
	}
	for _, s := range subjects {
		if strings.Contains(s, "plant") {
			t.Errorf("%q names an edge", s)
		}
	}
	if im := CloudServiceImports("ASVC"); len(im) != 1 || !im[0].Share {
		t.Errorf("CLOUD service imports = %+v, want one, sharing the caller's identity", im)
	}
	if im := ServiceImports("ACLOUD"); len(im) != 1 || im[0].Share {
		t.Errorf("SVC service imports = %+v, want one, not sharing the router's identity (the account is enough)", im)
	}
}

// TestEdgeServiceImportsStayInTheirSlice: an edge imports only its own
// forwarded calls, answers and outgoing calls.
func TestEdgeServiceImportsStayInTheirSlice(t *testing.T) {
	for _, im := range EdgeServiceImports("plant-7", "ASVC") {
		s := string(im.Subject)
		if !strings.HasPrefix(s, SvcPrefix) || !strings.Contains(s, ".plant-7.") || strings.Contains(s, "*") {
			t.Errorf("import %q reaches beyond edge plant-7's own service subjects", s)
		}
	}
}

// TestSiteCannotReachServicePlumbing: a site client may neither publish
// nor receive the service plumbing, nor write audit records.
func TestSiteCannotReachServicePlumbing(t *testing.T) {
	pub, sub := SiteServiceDeny()
	for _, want := range []string{SvcPrefix + ">", LocalAuditPrefix + ">"} {
		if !contains(pub, want) {
			t.Errorf("site may publish %q", want)
		}
	}
	if !contains(sub, SvcPrefix+">") {
		t.Errorf("site may subscribe %q", SvcPrefix+">")
	}
	if got := ServiceRequestSubject("plant-7", "echo", "get"); !strings.HasPrefix(got, SvcPrefix) {
		t.Errorf("forwarded calls on %q escape the denied prefix", got)
	}
	if got := LocalAuditSubject("echo", "get"); !strings.HasPrefix(got, LocalAuditPrefix) {
		t.Errorf("audit records on %q escape the denied prefix", got)
	}
}

func contains(list []string, s string) bool {
	for _, l := range list {
		if l == s {
			return true
		}
	}
	return false
}

// TestAuditRecordBatch: an audit message holds one or more records, one
// per line, and a reader gets each of them back; a message written as a
// single record (before batching) reads the same.
func TestAuditRecordBatch(t *testing.T) {
	var msg []byte
	for i, name := range []string{"ops", "plant-9", "intern"} {
		line, err := EncodeAuditRecord(&AuditRecord{Caller: Caller{Kind: "user", Name: name}, Service: "echo", Endpoint: "get", LatencyUS: int64(i)})
		if err != nil {
			t.Fatal(err)
		}
		msg = append(msg, line...)
	}
	recs, err := DecodeAuditRecords(msg)
	if err != nil || len(recs) != 3 || recs[1].Caller.Name != "plant-9" || recs[2].LatencyUS != 2 {
		t.Fatalf("DecodeAuditRecords = %+v, %v; want the 3 records in order", recs, err)
	}
	one, err := DecodeAuditRecords([]byte(`{"caller":{"kind":"edge","name":"plant-9"},"status":"ok"}`))
	if err != nil || len(one) != 1 || one[0].Caller.Name != "plant-9" {
		t.Fatalf("single record: %+v, %v", one, err)
	}
	if _, err := DecodeAuditRecords(append(msg, "{oops\n"...)); err == nil || !strings.Contains(err.Error(), "audit record 4") {
		t.Errorf("malformed 4th line: err %v, want it named", err)
	}
}
