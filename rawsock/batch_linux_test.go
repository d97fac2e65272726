//go:build linux

package rawsock

import (
	"errors"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/gping/gping/icmp"
)

// newBatch returns n buffers of ReadPacket's recommended size and n packets.
func newBatch(n int) ([][]byte, []Packet) {
	bufs := make([][]byte, n)
	for i := range bufs {
		bufs[i] = make([]byte, 1<<16+512)
	}
	return bufs, make([]Packet, n)
}

// readBatchUntil reads batches from c into bufs and pkts and hands each packet to each, until
// got holds want sequences; more than 2*want calls fail the test.
func readBatchUntil(t testing.TB, c *Conn, bufs [][]byte, pkts []Packet, want int, got map[uint16]bool, each func(p *Packet)) {
	t.Helper()
	for calls := 0; len(got) < want; calls++ {
		if calls > 2*want {
			t.Fatalf("%d calls, got %v", calls, got)
		}
		n := readBatchWithin(t, c, bufs, pkts)
		for i := range n {
			each(&pkts[i])
		}
	}
}

// readBatchWithin reads one batch, failing the test (and closing c) if nothing arrives in time.
func readBatchWithin(t testing.TB, c *Conn, bufs [][]byte, pkts []Packet) int {
	t.Helper()
	type result struct {
		n   int
		err error
	}
	done := make(chan result, 1)
	go func() {
		n, err := c.ReadBatch(bufs, pkts)
		done <- result{n, err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			t.Fatalf("ReadBatch: %v", r.err)
		}
		if r.n < 1 || r.n > len(pkts) {
			t.Fatalf("ReadBatch returned n = %d for %d packets", r.n, len(pkts))
		}
		return r.n
	case <-time.After(readTimeout):
		c.Close()
		<-done
		t.Fatalf("no packet within %v", readTimeout)
	}
	return 0
}

// TestReadBatchLoopback sends a burst of echo requests to loopback and reads the replies in
// batches: each exactly once, with all the fields ReadPacket fills in.
func TestReadBatchLoopback(t *testing.T) {
	const burst = 24
	for _, f := range families {
		for _, m := range modes {
			t.Run(f.String()+"/"+m.String(), func(t *testing.T) {
				c, _ := loopbackConn(t, f, m)
				dst := loopback(f)
				pr := newProber(t, c)
				bufs, pkts := newBatch(burst + 8)
				for seq := uint16(1); seq <= burst; seq++ {
					if err := pr.send(dst, seq, nil); err != nil {
						t.Fatalf("WriteTo seq %d: %v", seq, err)
					}
				}
				seen := make(map[uint16]bool)
				calls, largest := 0, 0
				for len(seen) < burst {
					if calls++; calls > burst {
						t.Fatalf("%d calls for %d replies; seen %v", calls, burst, seen)
					}
					n := readBatchWithin(t, c, bufs, pkts)
					largest = max(largest, n)
					for i := range n {
						p := &pkts[i]
						_, _, seq, ok := echoFields(p.Data)
						if !ok || !pr.isOurEcho(p.Data, f.EchoReplyType(), seq) {
							t.Fatalf("packet %d of %d: % x, want one of our echo replies", i, n, p.Data)
						}
						if seen[seq] {
							t.Errorf("reply seq %d read twice", seq)
						}
						seen[seq] = true
						if p.Src != dst || p.Dst != dst || p.Err != nil {
							t.Errorf("seq %d: %v -> %v (Err %+v), want %v -> %v", seq, p.Src, p.Dst, p.Err, dst, dst)
						}
						if p.TTL <= 0 || p.Time.IsZero() || p.IfIndex == 0 {
							t.Errorf("seq %d: TTL %d, Time %v, IfIndex %d; want all set", seq, p.TTL, p.Time, p.IfIndex)
						}
					}
				}
				// Loopback answers inside the sending syscall, so the replies were all queued
				// before the first read: one recvmmsg takes more than one of them.
				if largest < 2 {
					t.Errorf("largest batch %d in %d calls, want recvmmsg to take several replies at once", largest, calls)
				}
			})
		}
	}
}

// TestReadBatchRouted: ICMP errors reach ReadBatch as they reach ReadPacket (as packets on raw
// sockets, from the error queue on datagram sockets), among the replies.
func TestReadBatchRouted(t *testing.T) {
	lab := newRoutedLab(t)
	lab.each(t, func(t *testing.T, f icmp.Family, m Mode, c *Conn, pr *prober) {
		bufs, pkts := newBatch(8)
		sends := []struct {
			seq uint16
			ttl int
		}{{1, 1}, {2, 0}, {3, 1}, {4, 0}}
		for _, s := range sends {
			var opt *WriteOptions
			if s.ttl > 0 {
				opt = &WriteOptions{TTL: s.ttl}
			}
			if err := pr.send(lab.far[f], s.seq, opt); err != nil {
				t.Fatalf("WriteTo seq %d: %v", s.seq, err)
			}
		}
		got := map[uint16]bool{}
		readBatchUntil(t, c, bufs, pkts, len(sends), got, func(p *Packet) {
			switch {
			case p.Err == nil && len(p.Data) > 0 && p.Data[0] == f.EchoReplyType():
				_, _, seq, _ := echoFields(p.Data)
				if !pr.isOurEcho(p.Data, f.EchoReplyType(), seq) || p.Src != lab.far[f] || p.TTL != 63 {
					t.Errorf("reply % x from %v TTL %d, want ours from %v TTL 63", p.Data, p.Src, p.TTL, lab.far[f])
				}
				if seq != 2 && seq != 4 {
					t.Errorf("reply to seq %d, which had TTL 1", seq)
				}
				got[seq] = true
			default:
				seq := uint16(1)
				if m == Privileged {
					_, _, seq, _ = echoFields(quotedEcho(f, p.Data))
				} else if p.Err != nil {
					_, _, seq, _ = echoFields(p.Data)
				}
				if seq != 1 && seq != 3 {
					t.Fatalf("error packet about seq %d (% x, Err %+v), want 1 or 3", seq, p.Data, p.Err)
				}
				checkICMPError(t, pr, p, timeExceededType(f), lab.router[f], seq)
				got[seq] = true
			}
		})
	})
}

// TestReadBatchAllocs: after the first call, a write and a batched read allocate nothing.
func TestReadBatchAllocs(t *testing.T) {
	for _, f := range families {
		for _, m := range modes {
			t.Run(f.String()+"/"+m.String(), func(t *testing.T) {
				c, _ := loopbackConn(t, f, m)
				pr := newProber(t, c)
				bufs, pkts := newBatch(4)
				allocs := echoAllocs(t, c, pr, nil, func(seq uint16) bool {
					n, err := c.ReadBatch(bufs, pkts)
					return err == nil && n == 1 && pr.isOurEcho(pkts[0].Data, f.EchoReplyType(), seq)
				})
				if allocs != 0 {
					t.Errorf("%v allocations per write and batched read, want 0", allocs)
				}
			})
		}
	}
}

// TestReadBatchClose: Close unblocks a waiting ReadBatch, and later calls fail, with
// net.ErrClosed. An empty batch returns at once.
func TestReadBatchClose(t *testing.T) {
	c, _ := loopbackConn(t, icmp.IPv4, Privileged)
	bufs, pkts := newBatch(2)
	if n, err := c.ReadBatch(nil, nil); n != 0 || err != nil {
		t.Errorf("empty batch: %d, %v; want 0, nil", n, err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := c.ReadBatch(bufs, pkts)
		done <- err
	}()
	// The reader may or may not be parked yet: Close must end it either way.
	closeUnblocks(t, "ReadBatch", c.Close, done, readTimeout)
	if _, err := c.ReadBatch(bufs, pkts); !errors.Is(err, net.ErrClosed) {
		t.Errorf("second ReadBatch: %v, want net.ErrClosed", err)
	}
}

func BenchmarkReadBatchLoopback(b *testing.B) {
	const burst = 16
	for _, f := range families {
		for _, m := range modes {
			b.Run(f.String()+"/"+m.String(), func(b *testing.B) {
				c, _ := loopbackConn(b, f, m)
				dst := loopback(f)
				pr := newProber(b, c)
				watchdog := time.AfterFunc(2*time.Minute, func() { c.Close() })
				defer watchdog.Stop()
				bufs, pkts := newBatch(burst)
				var seq uint16
				b.ReportAllocs()
				for b.Loop() {
					for range burst {
						seq++
						pr.req = icmp.AppendEchoRequest(pr.req[:0], f, pr.id, seq, pr.token)
						if err := c.WriteTo(pr.req, dst, nil); err != nil {
							b.Fatal(err)
						}
					}
					for got := 0; got < burst; {
						n, err := c.ReadBatch(bufs, pkts)
						if err != nil {
							b.Fatal(err)
						}
						got += n
					}
				}
				b.ReportMetric(float64(b.N*burst)/b.Elapsed().Seconds(), "echoes/s")
			})
		}
	}
}

// echoMsg returns a Message carrying one of pr's echo requests.
func (pr *prober) echoMsg(dst netip.Addr, seq uint16, ttl int) Message {
	return Message{Data: icmp.AppendEchoRequest(nil, pr.c.Family(), pr.id, seq, pr.token), Dst: dst, TTL: ttl}
}

// TestWriteBatchRouted sends one batch with a message of every kind: per-message TTLs take
// effect, a message the host cannot route stops the batch with its own error and index, an
// invalid one likewise, and the rest go out when the caller resumes after them.
func TestWriteBatchRouted(t *testing.T) {
	lab := newRoutedLab(t)
	lab.each(t, func(t *testing.T, f icmp.Family, m Mode, c *Conn, pr *prober) {
		other := loopback(icmp.IPv4)
		if f == icmp.IPv4 {
			other = loopback(icmp.IPv6)
		}
		msgs := []Message{
			pr.echoMsg(lab.far[f], 1, 1),          // expires at the router
			pr.echoMsg(lab.far[f], 2, 0),          // answered, one router away
			pr.echoMsg(lab.localUnreach[f], 3, 0), // no route in the host
			pr.echoMsg(other, 4, 0),               // the wrong family
			pr.echoMsg(lab.router[f], 5, 0),       // answered by the router
			pr.echoMsg(lab.far[f], 6, 64),
		}
		n, err := c.WriteBatch(msgs)
		var oe *net.OpError
		if n != 2 || !errors.Is(err, syscall.EHOSTUNREACH) || !errors.As(err, &oe) {
			t.Fatalf("WriteBatch = %d, %v; want 2 and a *net.OpError wrapping EHOSTUNREACH", n, err)
		}
		if oe.Addr == nil || oe.Addr.String() != lab.localUnreach[f].String() {
			t.Errorf("error names %v, want the unroutable %v", oe.Addr, lab.localUnreach[f])
		}
		if n, err = c.WriteBatch(msgs[3:]); n != 0 || !errors.Is(err, ErrInvalidAddr) {
			t.Fatalf("WriteBatch from the wrong-family message = %d, %v; want 0, ErrInvalidAddr", n, err)
		}
		if n, err = c.WriteBatch(msgs[4:]); n != 2 || err != nil {
			t.Fatalf("WriteBatch of the rest = %d, %v; want 2, nil", n, err)
		}
		for i := range msgs {
			msgs[i].Data[0] = 0xff // WriteBatch keeps no reference: the packets are gone
		}
		bufs, pkts := newBatch(8)
		want := map[uint16]bool{1: true, 2: true, 5: true, 6: true}
		got := map[uint16]bool{}
		readBatchUntil(t, c, bufs, pkts, len(want), got, func(p *Packet) {
			var seq uint16
			switch {
			case p.Err == nil && len(p.Data) > 0 && p.Data[0] == f.EchoReplyType():
				_, _, seq, _ = echoFields(p.Data)
				wantFrom, wantTTL := lab.far[f], 63
				if seq == 5 {
					wantFrom, wantTTL = lab.router[f], 64
				}
				if !pr.isOurEcho(p.Data, f.EchoReplyType(), seq) || p.Src != wantFrom || p.TTL != wantTTL {
					t.Errorf("reply seq %d from %v TTL %d, want ours from %v TTL %d", seq, p.Src, p.TTL, wantFrom, wantTTL)
				}
			case m == Privileged:
				_, _, seq, _ = echoFields(quotedEcho(f, p.Data))
				checkICMPError(t, pr, p, timeExceededType(f), lab.router[f], seq)
			case p.Err != nil:
				_, _, seq, _ = echoFields(p.Data)
				checkICMPError(t, pr, p, timeExceededType(f), lab.router[f], seq)
			}
			if !want[seq] || got[seq] {
				t.Fatalf("packet about seq %d (% x, Err %+v): want each of %v once", seq, p.Data, p.Err, want)
			}
			got[seq] = true
		})
		if seq1 := got[1]; !seq1 {
			t.Error("no time exceeded for the TTL 1 message")
		}
	})
}

// TestWriteBatchStaleError: as TestStaleErrorDoesNotEatSend for WriteBatch. The pending error
// of an earlier packet fails the first message of a sendmmsg; every message must still go out.
func TestWriteBatchStaleError(t *testing.T) {
	lab := newRoutedLab(t)
	for _, f := range families {
		t.Run(f.String(), func(t *testing.T) {
			c, pr := staleErrorConn(t, lab, f)
			msgs := []Message{pr.echoMsg(lab.far[f], 2, 0), pr.echoMsg(lab.far[f], 3, 0)}
			if n, err := c.WriteBatch(msgs); n != 2 || err != nil {
				t.Fatalf("WriteBatch after a queued ICMP error = %d, %v; want 2, nil", n, err)
			}
			bufs, pkts := newBatch(4)
			got := map[uint16]bool{}
			readBatchUntil(t, c, bufs, pkts, 3, got, func(p *Packet) {
				_, _, seq, _ := echoFields(p.Data)
				switch {
				case p.Err != nil && p.Err.Type == timeExceededType(f) && seq == 1:
				case p.Err == nil && (seq == 2 || seq == 3) && pr.isOurEcho(p.Data, f.EchoReplyType(), seq):
				default:
					t.Fatalf("unexpected packet % x (Err %+v)", p.Data, p.Err)
				}
				got[seq] = true
			})
		})
	}
}

// TestWriteBatchLarge: more messages than one sendmmsg takes, to loopback, all answered once.
func TestWriteBatchLarge(t *testing.T) {
	const count = maxBatch + 100
	for _, f := range families {
		t.Run(f.String(), func(t *testing.T) {
			// All the replies queue before the first read: reopen with room for them.
			c, ns := loopbackConn(t, f, Privileged)
			c.Close()
			c, err := listenIn(t, ns, f, &Config{Mode: Privileged, RecvBuffer: 8 << 20})
			if err != nil {
				t.Fatal(err)
			}
			pr := newProber(t, c)
			msgs := make([]Message, count)
			for i := range msgs {
				msgs[i] = pr.echoMsg(loopback(f), uint16(i), 0)
			}
			if n, err := c.WriteBatch(msgs); n != count || err != nil {
				t.Fatalf("WriteBatch = %d, %v; want %d, nil", n, err, count)
			}
			bufs, pkts := newBatch(64)
			seen := make([]bool, count)
			for got := 0; got < count; {
				n := readBatchWithin(t, c, bufs, pkts)
				for i := range n {
					_, _, seq, _ := echoFields(pkts[i].Data)
					if !pr.isOurEcho(pkts[i].Data, f.EchoReplyType(), seq) || int(seq) >= count || seen[seq] {
						t.Fatalf("packet % x: want each of our replies once", pkts[i].Data)
					}
					seen[seq] = true
					got++
				}
			}
		})
	}
}

// TestWriteBatchClosed: a closed Conn sends nothing and says so.
func TestWriteBatchClosed(t *testing.T) {
	c, _ := loopbackConn(t, icmp.IPv4, Privileged)
	pr := newProber(t, c)
	msgs := []Message{pr.echoMsg(loopback(icmp.IPv4), 1, 0)}
	c.Close()
	if n, err := c.WriteBatch(msgs); n != 0 || !errors.Is(err, net.ErrClosed) {
		t.Fatalf("WriteBatch on a closed Conn = %d, %v; want 0, net.ErrClosed", n, err)
	}
	if n, err := c.WriteBatch(nil); n != 0 || err != nil {
		t.Fatalf("WriteBatch(nil) = %d, %v; want 0, nil", n, err)
	}
}
