// Package test holds Tether's end-to-end, fault and benchmark suites. The
// in-process suites run with 'go test ./...'; the ones that build and run the
// real binary or containers are behind build tags or environment switches
// named in the README.
package test
