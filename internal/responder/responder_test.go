package responder

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/gping/gping/icmp"
	"github.com/gping/gping/internal/netlab"
	"github.com/gping/gping/rawsock"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const token = 0x0123456789abcdef

// fixture is an echo request as a pinger would send it: 56 bytes of probe payload.
func fixture(f icmp.Family) *inbound {
	src, dst := netip.MustParseAddr("198.18.0.1"), netip.MustParseAddr("198.18.0.2")
	if f == icmp.IPv6 {
		src, dst = netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::2")
	}
	msg := icmp.AppendEchoRequest(nil, f, 0x1234, 7, icmp.AppendPayload(nil, 56, token, 65543))
	return &inbound{req: request(f, src, dst, msg, 63), msg: msg, ipID: 99}
}

// TestAnswer builds every kind of answer and parses it back with the project's own parser.
func TestAnswer(t *testing.T) {
	alt4, alt6 := netip.MustParseAddr("198.18.9.9"), netip.MustParseAddr("2001:db8:9::9")
	for _, f := range []icmp.Family{icmp.IPv4, icmp.IPv6} {
		alt := alt4
		if f == icmp.IPv6 {
			alt = alt6
		}
		in := fixture(f)
		want := in.req.Payload
		for _, tc := range []struct {
			name  string
			a     Action
			check func(t *testing.T, p packet, m *icmp.Message)
		}{
			{"normal", Normal(), func(t *testing.T, p packet, m *icmp.Message) {
				if m.Kind != icmp.KindEchoReply || m.ID != 0x1234 || m.Seq != 7 || !bytes.Equal(m.Payload, want) {
					t.Errorf("reply %+v", m)
				}
				if p.src != in.req.Dst || p.dst != in.req.Src {
					t.Errorf("%s -> %s", p.src, p.dst)
				}
			}},
			{"corrupt", CorruptPayload(), func(t *testing.T, p packet, m *icmp.Message) {
				if !m.ChecksumOK || len(m.Payload) != 56 || icmp.CheckPattern(m.Payload) != 55 {
					t.Errorf("checksum ok %v, pattern broken at %d", m.ChecksumOK, icmp.CheckPattern(m.Payload))
				}
			}},
			{"bad checksum", BadChecksum(), func(t *testing.T, p packet, m *icmp.Message) {
				// IPv6 checksums are the kernel's: the responder leaves them alone.
				if m.ChecksumOK != (f == icmp.IPv6) || !bytes.Equal(m.Payload, want) {
					t.Errorf("checksum ok %v", m.ChecksumOK)
				}
			}},
			{"truncate", Truncate(50), func(t *testing.T, p packet, m *icmp.Message) {
				if !bytes.Equal(m.Payload, want[:6]) {
					t.Errorf("payload %x", m.Payload)
				}
			}},
			{"truncate all", Truncate(1000), func(t *testing.T, p packet, m *icmp.Message) {
				if len(m.Payload) != 0 || m.Kind != icmp.KindEchoReply {
					t.Errorf("%+v", m)
				}
			}},
			{"foreign id", ForeignID(), func(t *testing.T, p packet, m *icmp.Message) {
				if m.ID == 0x1234 || m.Seq != 7 {
					t.Errorf("id %#x seq %d", m.ID, m.Seq)
				}
			}},
			{"wrong source", WrongSource(), func(t *testing.T, p packet, m *icmp.Message) {
				if p.src != alt || p.dst != in.req.Src {
					t.Errorf("%s -> %s", p.src, p.dst)
				}
			}},
			{"rewrite", Action{Rewrite: func(b []byte) { b[15]-- }}, func(t *testing.T, p packet, m *icmp.Message) {
				if tok, seq, ok := icmp.ParsePayload(m.Payload); !ok || tok != token || seq != 65542 {
					t.Errorf("payload header %x %d", tok, seq)
				}
				if in.req.Payload[15] != byte(65543&0xff) {
					t.Error("Rewrite edited the request itself")
				}
			}},
			{"time exceeded short", TimeExceeded(QuoteShort), func(t *testing.T, p packet, m *icmp.Message) {
				checkQuote(t, in, m, icmp.KindTimeExceeded, 0, 0)
			}},
			{"time exceeded long", TimeExceeded(QuoteLong), func(t *testing.T, p packet, m *icmp.Message) {
				checkQuote(t, in, m, icmp.KindTimeExceeded, 0, 56)
			}},
			{"unreachable options", Unreachable(13, QuoteOptions), func(t *testing.T, p packet, m *icmp.Message) {
				checkQuote(t, in, m, icmp.KindDestinationUnreachable, 13, 56)
				if f == icmp.IPv4 && p.msg[8] != 0x4f {
					t.Errorf("quoted version/IHL %#x, want 0x4f (40 bytes of options)", p.msg[8])
				}
			}},
		} {
			t.Run(f.String()+"/"+tc.name, func(t *testing.T) {
				p, err := answer(&tc.a, in, alt)
				if err != nil {
					t.Fatal(err)
				}
				if p.fam != f {
					t.Fatalf("family %s", p.fam)
				}
				var m icmp.Message
				if err := icmp.Parse(f, p.msg, &m); err != nil {
					t.Fatal(err)
				}
				tc.check(t, p, &m)
			})
		}
		if _, err := answer(&Action{WrongSource: true}, in, netip.Addr{}); !errors.Is(err, ErrNoAltSource) {
			t.Errorf("%s wrong source without an address: %v", f, err)
		}
	}
}

func checkQuote(t *testing.T, in *inbound, m *icmp.Message, kind icmp.Kind, code uint8, payload int) {
	t.Helper()
	q := &m.Quote
	if m.Kind != kind || m.Code != code || !m.ChecksumOK || !q.Valid || q.Src != in.req.Src || q.Dst != in.req.Dst ||
		q.ICMPType != in.req.Family.EchoRequestType() || q.ICMPID != in.req.ID || q.ICMPSeq != in.req.Seq ||
		q.TTL != 63 || q.TotalLen != len(in.msg)+ipHeaderLen(in.req.Family, m) {
		t.Errorf("error %+v, quote %+v", m, q)
	}
	if !bytes.Equal(q.Payload, in.req.Payload[:payload]) {
		t.Errorf("quoted payload %x", q.Payload)
	}
}

func ipHeaderLen(f icmp.Family, m *icmp.Message) int {
	if f == icmp.IPv6 {
		return 40
	}
	if m.Kind == icmp.KindDestinationUnreachable {
		return 60 // the options case
	}
	return 20
}

// TestAnswerBounds: quotes stop where RFC 1812 and RFC 4443 say, however large the request.
func TestAnswerBounds(t *testing.T) {
	for _, f := range []icmp.Family{icmp.IPv4, icmp.IPv6} {
		in := fixture(f)
		in.msg = icmp.AppendEchoRequest(nil, f, 1, 2, icmp.AppendPayload(nil, 8000, token, 2))
		in.req.Payload = in.msg[8:]
		for _, q := range []Quote{QuoteLong, QuoteOptions} {
			p, err := answer(&Action{Kind: KindTimeExceeded, Quote: q}, in, netip.Addr{})
			if err != nil {
				t.Fatal(err)
			}
			limit := map[icmp.Family]int{icmp.IPv4: 576 - 20, icmp.IPv6: 1280 - 40}[f]
			if len(p.msg) != limit {
				t.Errorf("%s quote %d: message of %d bytes, want %d", f, q, len(p.msg), limit)
			}
			var m icmp.Message
			if err := icmp.Parse(f, p.msg, &m); err != nil || !m.Quote.Valid || m.Quote.ICMPSeq != 2 {
				t.Errorf("%s: %v %+v", f, err, m.Quote)
			}
		}
	}
}

// TestLab: requests from the lab's host are logged as sent and answered per the script:
// duplicates, drops and a reordered reply, on both families; Close discards a pending delay.
func TestLab(t *testing.T) {
	lab := netlab.New(t)
	c := lab.Chain(0)
	script := func(n int, req *Request) []Action {
		switch req.Seq {
		case 2:
			return []Action{Duplicate(2)}
		case 3:
			return []Action{Drop()}
		case 4:
			return []Action{Reorder()}
		case 6:
			return []Action{Delay(time.Hour)}
		}
		return []Action{Normal()}
	}
	r := MustStart(t, c.Target, &Config{Script: script})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var sent int
	for _, dst := range []netip.Addr{c.TargetAddr4, c.TargetAddr6} {
		f := icmp.FamilyOf(dst)
		var conn *rawsock.Conn
		if err := c.Host.Do(func() (err error) {
			conn, err = rawsock.Listen(f, &rawsock.Config{Mode: rawsock.Privileged})
			return err
		}); err != nil {
			t.Fatal(err)
		}
		got := make(chan uint16, 16)
		done := make(chan struct{})
		go func() {
			defer close(done)
			buf := make([]byte, 1<<16)
			var p rawsock.Packet
			var m icmp.Message
			for {
				if err := conn.ReadPacket(buf, &p); err != nil {
					if errors.Is(err, net.ErrClosed) {
						return
					}
					continue
				}
				if icmp.Parse(f, p.Data, &m) == nil && m.Kind == icmp.KindEchoReply && m.ID == 0xbeef && p.Src == dst {
					got <- m.Seq
				}
			}
		}()
		for seq := uint16(1); seq <= 6; seq++ {
			msg := icmp.AppendEchoRequest(nil, f, 0xbeef, seq, icmp.AppendPayload(nil, 24, token, uint64(seq)))
			if err := conn.WriteTo(msg, dst, nil); err != nil {
				t.Fatal(err)
			}
			sent++
		}
		want := []uint16{1, 2, 2, 2, 5, 4}
		var seqs []uint16
		for len(seqs) < len(want) {
			select {
			case s := <-got:
				seqs = append(seqs, s)
			case <-ctx.Done():
				t.Fatalf("%s: replies %v, want %v", f, seqs, want)
			}
		}
		if !slices.Equal(seqs, want) {
			t.Errorf("%s: replies %v, want %v", f, seqs, want)
		}
		if err := r.WaitReceived(ctx, sent); err != nil {
			t.Fatal(err)
		}
		conn.Close()
		<-done
		select {
		case s := <-got:
			t.Errorf("%s: unexpected reply %d", f, s)
		default:
		}
	}
	log := r.Log()
	if len(log) != 12 {
		t.Fatalf("logged %d requests, want 12", len(log))
	}
	for i, req := range log {
		src, dst := c.HostAddr4, c.TargetAddr4
		if i >= 6 {
			src, dst = c.HostAddr6, c.TargetAddr6
		}
		if req.N != i || req.Src != src || req.Dst != dst || req.ID != 0xbeef || req.Seq != uint16(i%6+1) ||
			req.Len != 24 || req.TTL != 64 || req.Payload != nil || req.Time.IsZero() {
			t.Errorf("log[%d] = %+v", i, req)
		}
	}
	if s := r.Stats(); s.Received != 12 || s.Sent != 12 || s.SendErrors != 0 {
		t.Errorf("stats %+v", s)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.WaitDelayed(ctx); err != nil {
		t.Errorf("delays still pending after Close: %v", err)
	}
	if err := r.Close(); !errors.Is(err, ErrClosed) {
		t.Errorf("second Close: %v", err)
	}
}
