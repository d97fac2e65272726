package probe_test

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/gping/gping/probe"
)

// Ping a host three times and read the summary. Examples run against loopback; they need root,
// CAP_NET_RAW or a ping_group_range that admits the user, as gping does.
func Example() {
	e := probe.New(nil) // one engine per process, shared by every caller
	defer e.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sum, err := e.Ping(ctx, netip.MustParseAddr("127.0.0.1"), &probe.PingConfig{Count: 3, Interval: 10 * time.Millisecond})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%d sent, %d received, %g%% loss, rtt ok: %v\n",
		sum.Sent, sum.Received, sum.LossPercent(), sum.Min > 0 && sum.Min <= sum.Avg && sum.Avg <= sum.Max)
	// Output: 3 sent, 3 received, 0% loss, rtt ok: true
}

// Ask whether hosts are reachable from many goroutines at once, over one engine.
func ExampleEngine_Reachable() {
	e := probe.New(nil)
	defer e.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	hosts := []string{"127.0.0.1", "127.0.0.2", "::1"}
	errs := make([]error, len(hosts))
	var wg sync.WaitGroup
	for i, h := range hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = e.Reachable(ctx, netip.MustParseAddr(h))
		}()
	}
	wg.Wait()
	for i, h := range hosts {
		fmt.Println(h, errs[i] == nil)
	}
	// Output:
	// 127.0.0.1 true
	// 127.0.0.2 true
	// ::1 true
}

// Send one probe with a TTL and look at what answered.
func ExampleEngine_Send() {
	e := probe.New(nil)
	defer e.Close()
	res, err := e.Send(context.Background(), probe.Request{
		Dst: netip.MustParseAddr("127.0.0.1"), Size: 56, TTL: 8, Timeout: 2 * time.Second,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(res.Outcome, res.From, res.Size, "bytes")
	// Output: reply 127.0.0.1 64 bytes
}

// Start probes without waiting, and collect their outcomes from a callback.
func ExampleEngine_Start() {
	e := probe.New(nil)
	defer e.Close()
	var (
		mu   sync.Mutex
		done = make(chan struct{})
		got  int // replies
		ends int // probes that ended, however
	)
	const n = 5
	for range n {
		_, err := e.Start(probe.Request{
			Dst: netip.MustParseAddr("127.0.0.1"), Size: 56, Timeout: 2 * time.Second,
			// Called on an engine goroutine: keep it short, never block.
			OnResult: func(r probe.Result) {
				mu.Lock()
				defer mu.Unlock()
				if r.Outcome == probe.Duplicate {
					return
				}
				if r.Outcome == probe.Reply {
					got++
				}
				if ends++; ends == n {
					close(done)
				}
			},
		})
		if err != nil {
			fmt.Println(err)
			return
		}
	}
	<-done
	fmt.Println(got, "replies")
	// Output: 5 replies
}
