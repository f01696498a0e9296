package forwarder

import "testing"

func TestNewRequiresConfig(t *testing.T) {
	_, err := New(t.Context(), Config{Edge: "e1"})
	want := "forwarder config: BufferConn, Conn, Linked must be set"
	if err == nil || err.Error() != want {
		t.Errorf("New with only Edge: err = %v, want %q", err, want)
	}
}
