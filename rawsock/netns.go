package rawsock

// NetNS is the network namespace a socket-creating call must run in. Sockets belong to the
// namespace of the thread that creates them, and a Go program's goroutines move between
// threads: a prober that creates sockets long after it was opened (one per TCP connect)
// records the namespace at open time and creates them through Do, so that a program whose
// threads are in different namespaces (tests do this) never sends from the wrong one.
//
// It is safe for concurrent use.
type NetNS struct {
	sys netnsSys
}

// CurrentNetNS records the network namespace of the calling thread.
func CurrentNetNS() (*NetNS, error) { return currentNetNS() }

// Do runs fn on a thread in the recorded namespace. When the calling thread is in it already
// (always, in a program that never changes namespace) fn runs right there; otherwise a locked
// thread switches in with setns(2), which needs CAP_SYS_ADMIN, and back.
func (n *NetNS) Do(fn func() error) error { return n.do(fn) }

// Close releases the namespace handle.
func (n *NetNS) Close() error { return n.close() }
