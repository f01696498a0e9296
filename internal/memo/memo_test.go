package memo

import (
	"strconv"
	"testing"
)

// TestCache: a string decodes once while it is remembered, an invalid one
// every time, and the cache never holds more than its size.
func TestCache(t *testing.T) {
	calls := 0
	c := New(4, func(s string) (int, bool) {
		calls++
		n, err := strconv.Atoi(s)
		return n, err == nil
	})
	for range 3 {
		if v, ok := c.Get("42"); !ok || v != 42 {
			t.Fatalf("Get(42) = %d, %v; want 42, true", v, ok)
		}
	}
	if calls != 1 {
		t.Errorf("42 decoded %d times, want once", calls)
	}
	for range 2 {
		if _, ok := c.Get("x"); ok {
			t.Fatal("Get(x) ok, want invalid")
		}
	}
	if calls != 3 {
		t.Errorf("decode calls after two invalid gets: %d, want 3 (invalid strings are not remembered)", calls)
	}
	for i := range 10 {
		c.Get(strconv.Itoa(i))
		if n := len(c.m); n > 4 {
			t.Fatalf("cache holds %d entries, want at most 4", n)
		}
	}
}
