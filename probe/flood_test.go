package probe

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/gping/gping/icmp"
	"github.com/gping/gping/rawsock"
)

// TestFloodWindow: a flood keeps at most Preload probes in flight while its next sends are made
// by the goroutine that delivers the replies, and still reports to Run's goroutine, in order:
// each probe's OnSend before its outcome, one Reply per probe, none left over.
func TestFloodWindow(t *testing.T) {
	const count = 3000
	for _, m := range matrix {
		for _, window := range []int{1, 16} {
			t.Run(fmt.Sprintf("%s/window-%d", m, window), func(t *testing.T) {
				e := newEngine(t, m.mode, icmp.FamilyOf(m.dst))
				sentAt := make(map[uint64]int) // seq -> order of its OnSend
				replied := make(map[uint64]bool)
				inFlight, most, order := 0, 0, 0
				var problems []string
				cfg := &PingConfig{
					// A flood also sends an Interval after the last send whatever is in flight
					// (iputils -f: at least 100 a second); a slow reply on a loaded machine
					// (CI saw one of over 10 ms) would then rightly exceed the window. An
					// hour's Interval leaves only the window to pace the sends.
					Count: count, Flood: true, Preload: window, Timeout: 5 * time.Second, Interval: time.Hour,
					OnSend: func(seq uint64) {
						order++
						if _, dup := sentAt[seq]; dup {
							problems = append(problems, fmt.Sprintf("OnSend twice for %d", seq))
						}
						sentAt[seq] = order
						inFlight++
						most = max(most, inFlight)
					},
					OnResult: func(r Result) {
						order++
						at, ok := sentAt[r.Seq]
						if !ok || at >= order {
							problems = append(problems, fmt.Sprintf("outcome %v of %d before its OnSend", r.Outcome, r.Seq))
						}
						if r.Outcome != Reply || replied[r.Seq] {
							problems = append(problems, fmt.Sprintf("outcome %v for %d (replied before: %v)", r.Outcome, r.Seq, replied[r.Seq]))
						}
						replied[r.Seq] = true
						inFlight--
					},
				}
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				s, err := e.Ping(ctx, m.dst, cfg)
				if err != nil {
					t.Fatal(err)
				}
				if len(problems) > 0 {
					t.Fatalf("%d problems, first: %v", len(problems), problems[:min(5, len(problems))])
				}
				if s.Sent != count || s.Received != count || len(sentAt) != count || len(replied) != count {
					t.Errorf("sent %d, received %d, OnSend %d, replies %d; want %d each", s.Sent, s.Received, len(sentAt), len(replied), count)
				}
				// Run's goroutine learns of sends and replies in order, so what it sees in
				// flight is what was in flight.
				if most > window {
					t.Errorf("%d probes in flight at once, want at most the window %d", most, window)
				}
				if n := e.pendingUnanswered(); n != 0 {
					t.Errorf("%d probes still pending after Run", n)
				}
			})
		}
	}
}

// pendingUnanswered counts the registered probes still awaiting an answer.
func (e *Engine) pendingUnanswered() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, h := range e.pending.handles() {
		ent := e.ent(h)
		if !ent.is(entryDone | entryExpired) {
			n++
		}
	}
	return n
}

// TestFloodSlots: a flood longer than the 16-bit sequence space, within one Timeout, holds at
// most 65536 answered probes (the ones a duplicate could still be told from their successors),
// not every probe it sent. Without trim, each probe's slot would stay until its Timeout: 86 MB
// after a million probes at iputils' 10 s.
func TestFloodSlots(t *testing.T) {
	const (
		count  = 150_000 // more than two wraps of the sequence
		window = 16
	)
	e := newEngine(t, rawsock.Privileged, icmp.IPv4)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := e.Ping(ctx, lo4, &PingConfig{Count: count, Flood: true, Preload: window, Timeout: time.Hour, Interval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if s.Sent != count || s.Received != count {
		t.Fatalf("sent %d, received %d; want %d each", s.Sent, s.Received, count)
	}
	e.mu.Lock()
	used, queued := int(e.used), e.fifo.n+len(e.byTime)
	e.mu.Unlock()
	// 65536 answered, and the few a slot is taken for before the old one is given up.
	if limit := 1<<16 + window + slabChunk; used > limit || queued > limit {
		t.Errorf("%d slots handed out, %d queued, after %d probes; want at most %d", used, queued, count, limit)
	}
}
