// Package stats turns the outcomes of ICMP echo probes (RFC 792, RFC 4443)
// into the round-trip and loss figures that ping prints, in constant memory
// per target however many probes are sent.
//
// The figures follow iputils ping so that the two tools agree line for line:
// min/avg/max/mdev cover every reply including duplicates, mdev is the
// population standard deviation, and loss is (sent-received)/sent. Where the
// IETF metrics define a figure the names follow them: round-trip delay
// (RFC 2681), packet loss (RFC 7680), reordering as a packet arriving after
// one with a higher sequence number (RFC 4737), and jitter as the mean
// absolute delay variation between consecutive packets (RFC 3393, RFC 5481).
//
// Percentiles come from a sparse logarithmic histogram in the manner of
// DDSketch (Masson, Rim and Lee, VLDB 2019) with 1% relative accuracy, so a
// Recorder never stores individual samples. Variance uses Welford's update in
// float64, which stays accurate where Σx² − n·mean² cancels catastrophically.
//
// A Recorder belongs to one goroutine; it hands out Summary values that can
// be copied and shared freely.
package stats
