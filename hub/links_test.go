package hub

import (
	"testing"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"

	"github.com/tether-fabric/tether/contract"
)

// TestSameRun: a holder with a run key is matched only by that key, never
// by its name (which any site client can read); a holder without one (an
// older edge or hub) by its name.
func TestSameRun(t *testing.T) {
	for _, tc := range []struct {
		name     string
		cur, rec linkRecord
		want     bool
	}{
		{"same key, same name", linkRecord{Name: "edge-a-1", Key: "k1"}, linkRecord{Name: "edge-a-1", Key: "k1"}, true},
		{"same key, other name", linkRecord{Name: "edge-a-1", Key: "k1"}, linkRecord{Name: "edge-a-2", Key: "k1"}, true},
		{"copy: live name, other key", linkRecord{Name: "edge-a-1", Key: "k1"}, linkRecord{Name: "edge-a-1", Key: "k2"}, false},
		{"copy: live name, no key", linkRecord{Name: "edge-a-1", Key: "k1"}, linkRecord{Name: "edge-a-1"}, false},
		{"old holder, same name", linkRecord{Name: "edge-a-1"}, linkRecord{Name: "edge-a-1", Key: "k2"}, true},
		{"old holder, other name", linkRecord{Name: "edge-a-1"}, linkRecord{Name: "edge-a-2"}, false},
		{"unreadable holder", linkRecord{}, linkRecord{Name: "edge-a-2", Key: "k2"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := sameRun(tc.cur, tc.rec); got != tc.want {
				t.Errorf("sameRun(%+v, %+v) = %v, want %v", tc.cur, tc.rec, got, tc.want)
			}
		})
	}
}

// TestIsEnrollUser: only a user that may send exactly $TETHER.ENROLL is an
// enroll user; a leaf user (no permissions of its own) is not.
func TestIsEnrollUser(t *testing.T) {
	ukp, _ := nkeys.CreateUser()
	pub, _ := ukp.PublicKey()
	enroll := jwt.NewUserClaims(pub)
	enroll.Permissions = contract.EnrollPermissions()
	leaf := jwt.NewUserClaims(pub)
	other := jwt.NewUserClaims(pub)
	other.Pub.Allow.Add(contract.EnrollSubject, "telemetry.>")
	for _, tc := range []struct {
		name string
		uc   *jwt.UserClaims
		want bool
	}{{"enroll user", enroll, true}, {"leaf user", leaf, false}, {"wider user", other, false}} {
		if got := contract.IsEnrollUser(tc.uc); got != tc.want {
			t.Errorf("%s: contract.IsEnrollUser = %v, want %v", tc.name, got, tc.want)
		}
	}
}
