// Package memo remembers what a string decoded to, for the few strings a
// hot path sees over and over: a service call's caller headers repeat for
// every call of the same connection, and decoding their JSON was a tenth
// of a call's CPU. A Cache returns exactly what its decode function
// returned for an equal string, so it changes no decision; it holds at
// most its size and starts afresh when full (callers that come and go do
// not make it grow).
package memo

import "sync"

// Cache maps strings to what decode made of them. The zero value is not
// usable; use New.
type Cache[V any] struct {
	decode func(string) (V, bool)
	size   int

	mu sync.Mutex
	m  map[string]V
}

// New returns a cache of at most size entries around decode, which
// returns the value and whether the string was valid (an invalid string is
// not remembered).
func New[V any](size int, decode func(string) (V, bool)) *Cache[V] {
	return &Cache[V]{decode: decode, size: size, m: make(map[string]V)}
}

// Get returns decode(s), from memory when s was seen.
func (c *Cache[V]) Get(s string) (V, bool) {
	c.mu.Lock()
	v, ok := c.m[s]
	c.mu.Unlock()
	if ok {
		return v, true
	}
	v, ok = c.decode(s)
	if !ok {
		return v, false
	}
	c.mu.Lock()
	if len(c.m) >= c.size {
		clear(c.m)
	}
	c.m[s] = v
	c.mu.Unlock()
	return v, true
}
