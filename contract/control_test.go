package contract

import (
	"errors"
	"testing"

	"github.com/nats-io/nkeys"
)

func TestProofOfPossession(t *testing.T) {
	cur, _ := nkeys.CreateUser()
	next, _ := nkeys.CreateUser()
	curPub, _ := cur.PublicKey()
	nextPub, _ := next.PublicKey()
	ch := RotateChallenge("plant-7", "nonce-0123456789", nextPub)
	sig, err := Sign(next, ch)
	if err != nil {
		t.Fatal(err)
	}
	if err := Verify(nextPub, ch, sig); err != nil {
		t.Fatalf("valid signature refused: %v", err)
	}
	// The current key's signature does not pass for the new key, nor for
	// another edge's or another nonce's challenge.
	csig, _ := Sign(cur, ch)
	for name, tc := range map[string]struct {
		pub string
		ch  []byte
		sig string
	}{
		"other key":   {nextPub, ch, csig},
		"other edge":  {nextPub, RotateChallenge("plant-8", "nonce-0123456789", nextPub), sig},
		"other nonce": {nextPub, RotateChallenge("plant-7", "nonce-x", nextPub), sig},
		"swapped key": {curPub, ch, sig},
	} {
		if err := Verify(tc.pub, tc.ch, tc.sig); !errors.Is(err, ErrBadSignature) {
			t.Errorf("%s: Verify = %v, want ErrBadSignature", name, err)
		}
	}
	if err := Verify("not-a-key", ch, sig); err == nil {
		t.Error("a malformed public key was accepted")
	}
	if err := Verify(nextPub, ch, "!!"); err == nil {
		t.Error("a malformed signature was accepted")
	}
}
