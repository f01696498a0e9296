// Package workingset trims the parts of a process's resident memory that
// it does not use while idle: the pages of its own executable that
// start-up (or code run now and then) mapped, and, with TrimWhenIdle, the
// garbage and free heap an idle Go process keeps until its next
// collection.
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
