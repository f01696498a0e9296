// Package workingset trims the part of a process's resident memory that
// start-up alone used: the pages of its own executable.
//
// A Go binary is one static file that the process maps read-only (code,
// constant data, the tables the runtime reads for stacks and types).
// Start-up (every package's initialisation, then the server's own) touches
// nearly all of it, and the kernel keeps those pages mapped: they count in
// the process's RSS although an idle process runs a small part of the
// code. ReleaseExecutable tells the kernel the process does not need them
// (madvise MADV_DONTNEED); the pages stay in the page cache, and what the
// process runs next is mapped again on first use.
//
// Invariant: only read-only, file-backed mappings of the executable that
// hold no private (anonymous) pages are released, so no data can be lost:
// every released page is an unmodified page of the file.
package workingset
