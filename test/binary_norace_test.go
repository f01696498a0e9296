//go:build !race

package test

// binaryRace is true when the tests run with -race; the tether binary is
// then built with -race too.
const binaryRace = false
