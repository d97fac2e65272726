package stats_test

import (
	"fmt"
	"time"

	"github.com/gping/gping/stats"
)

// The summary lines ping prints at the end of a run.
func ExampleRecorder() {
	var r stats.Recorder
	rtts := []time.Duration{42 * time.Microsecond, 61 * time.Microsecond, 47 * time.Microsecond}
	for seq, rtt := range rtts {
		r.Sent()
		r.Reply(uint64(seq), rtt)
	}
	r.Sent()
	r.Lost()

	s := r.Summary()
	fmt.Printf("%d packets transmitted, %d received, %g%% packet loss\n", s.Sent, s.Received, s.LossPercent())
	fmt.Printf("rtt min/avg/max/mdev = %s/%s/%s/%s ms\n",
		stats.FormatMS(s.Min), stats.FormatMS(s.Avg), stats.FormatMS(s.Max), stats.FormatMS(s.MDev))
	// Output:
	// 4 packets transmitted, 3 received, 25% packet loss
	// rtt min/avg/max/mdev = 0.042/0.050/0.061/0.008 ms
}

func ExampleFormatMS() {
	fmt.Println(stats.FormatMS(1234567 * time.Nanosecond))
	// Output: 1.234
}
