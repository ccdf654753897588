package metadb

import "syscall"

// mmapFlags has the kernel map the whole file when bbolt maps it (at
// open, and each time the file outgrows its mapping), rather than page by
// page on first touch: a manifest read that misses the cache, at a
// random place in a file of gigabytes, would otherwise take a page fault
// nearly every time, and rebuilding the index at open one per page.
const mmapFlags = syscall.MAP_POPULATE
