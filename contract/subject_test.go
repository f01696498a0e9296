package contract

import (
	"strings"
	"testing"
)

func TestCheckPublishSubject(t *testing.T) {
	for _, tc := range []struct {
		subject string
		want    string // "" = accepted; else a part of the error
	}{
		{"telemetry.temp", ""},
		{"telemetry.line-3.temp_C", ""},
		{"telemetry.*", `wildcard "*"`},
		{"telemetry.x.>", `wildcard ">"`},
		{">", `wildcard ">"`},
		{"telemetry..x", "empty token"},
		{".telemetry", "empty token"},
		{"telemetry.", "empty token"},
		{"", "empty"},
		{"telemetry.a b", "white space"},
		{"telemetry.*x", ""}, // only a whole token is a wildcard
	} {
		err := CheckPublishSubject(tc.subject)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%q: got %v, want accepted", tc.subject, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%q: got %v, want an error with %q", tc.subject, err, tc.want)
		}
	}
}

func BenchmarkCheckPublishSubject(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if CheckPublishSubject("telemetry.line-3.temperature") != nil {
			b.Fatal("refused")
		}
	}
}
