package icmp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"
	"unsafe"
)

var updateCorpus = flag.Bool("update-corpus", false, "rewrite testdata/fuzz/FuzzParse from the seed builders")

// familyPrefix is the first fuzz input byte, which selects the family:
// bit 1 clear is IPv4, set is IPv6, so that 4 and 6 read naturally.
func familyPrefix(f Family) byte { return byte(f) }

func splitFuzzInput(in []byte) (Family, []byte) {
	if in[0]&0x02 == 0 {
		return IPv4, in[1:]
	}
	return IPv6, in[1:]
}

type seed struct {
	name string
	f    Family
	msg  []byte
}

// parseSeeds are real-shaped messages for FuzzParse.
func parseSeeds(t testing.TB) []seed {
	udp4 := udpProbe4(t, 1, 40000, 33434, []byte("0123456789abcdef"))
	opts4 := udpProbe4(t, 1, 40000, 33435, []byte("opts"), routerAlert())
	echo6 := echoProbe6(t, 1, 7, 8, []byte("hop-by-hop quoted"), true)
	mpls := extStruct(testObject{classMPLS, ctypeMPLSIncoming, append(mplsEntry(16014, 0, false, 1), mplsEntry(3, 0, true, 1)...)})
	ifInfo := extStruct(testObject{classInterfaceInfo, ifInfoIfIndex | ifInfoIPAddr | ifInfoName | ifInfoMTU,
		bytes.Join([][]byte{{0, 0, 0, 3}, {0, 1, 0, 0, 198, 18, 5, 1}, {8, 'e', 't', 'h', '0', 0, 0, 0}, {0, 0, 5, 0xdc}}, nil)})
	te6hbh := errorMsg(IPv6, 3, 0, [4]byte{}, echo6, nil)
	s := []seed{
		{"echo-reply-v4", IPv4, AppendEchoReply(nil, IPv4, 0x1234, 1, AppendPayload(nil, 56, 0xfeedface, 1))},
		{"echo-reply-v6", IPv6, AppendEchoReply(nil, IPv6, 0x1234, 1, AppendPayload(nil, 56, 0xfeedface, 1))},
		{"time-exceeded-udp-8-v4", IPv4, errorMsg(IPv4, 11, 0, [4]byte{}, udp4[:28], nil)},
		{"time-exceeded-reassembly-v4", IPv4, errorMsg(IPv4, 11, 1, [4]byte{}, udp4, nil)},
		{"time-exceeded-reassembly-v6", IPv6, errorMsg(IPv6, 3, 1, [4]byte{}, echo6, nil)},
		{"time-exceeded-mpls-v4", IPv4, errorMsg(IPv4, 11, 0, [4]byte{0, 128 / 4}, padQuote(udp4, 128), mpls)},
		{"time-exceeded-legacy-ext-v4", IPv4, errorMsg(IPv4, 11, 0, [4]byte{}, padQuote(udp4, 128), ifInfo)},
		{"unreachable-ip-options-v4", IPv4, errorMsg(IPv4, 3, 3, [4]byte{}, opts4, nil)},
		{"frag-needed-v4", IPv4, errorMsg(IPv4, 3, 4, [4]byte{0, 0, 0x05, 0xdc}, udp4, nil)},
		{"param-problem-tcp-v4", IPv4, errorMsg(IPv4, 12, 0, [4]byte{1, 0, 0, 0}, tcpProbe4(t, 1, 80, 99), nil)},
		{"packet-too-big-v6", IPv6, errorMsg(IPv6, 2, 0, [4]byte{0, 0, 0x05, 0x00}, echo6, nil)},
		{"time-exceeded-hbh-v6", IPv6, te6hbh},
		{"unreachable-ext-v6", IPv6, errorMsg(IPv6, 1, 4, [4]byte{128 / 8}, padQuote(udpProbe6(t, 1, 1, 2, nil), 128), ifInfo)},
		{"param-problem-v6", IPv6, errorMsg(IPv6, 4, 0, [4]byte{0, 0, 0, 6}, echo6, nil)},
		{"truncated-udp-v4", IPv4, errorMsg(IPv4, 11, 0, [4]byte{}, udp4[:24], nil)},
		{"truncated-hbh-v6", IPv6, te6hbh[:8+40+4]},
		{"truncated-ext-v4", IPv4, errorMsg(IPv4, 11, 0, [4]byte{0, 128 / 4}, padQuote(udp4, 128), mpls[:10])},
		{"cve-2022-23093-ihl-v4", IPv4, errorMsg(IPv4, 3, 3, [4]byte{}, append([]byte{0x4f}, udp4[1:28]...), nil)},
	}
	return s
}

func FuzzParse(f *testing.F) {
	for _, s := range parseSeeds(f) {
		f.Add(append([]byte{familyPrefix(s.f)}, s.msg...))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) == 0 {
			return
		}
		fam, b := splitFuzzInput(in)
		var m Message
		err := Parse(fam, b, &m)
		checkMessage(t, fam, b, &m, err)
	})
}

func checkMessage(t *testing.T, fam Family, b []byte, m *Message, err error) {
	t.Helper()
	kind := KindOther
	if len(b) > 0 {
		kind = Classify(fam, b[0])
	}
	needed := headerLen
	if kind == KindOther {
		needed = 4
	}
	if (len(b) < needed) != (err != nil) {
		t.Fatalf("len %d kind %v: err %v", len(b), kind, err)
	}
	if err != nil {
		if !errors.Is(err, ErrTooShort) {
			t.Fatalf("error does not wrap ErrTooShort: %v", err)
		}
		return
	}
	if m.Family != fam || m.Kind != kind || m.Type != b[0] || m.Code != b[1] {
		t.Fatalf("header: %+v", m)
	}
	within(t, "Payload", b, m.Payload)
	within(t, "Extensions", b, m.Extensions)
	within(t, "Quote.Payload", b, m.Quote.Payload)
	if m.MTU < 0 || m.Pointer < 0 {
		t.Fatalf("negative MTU %d or pointer %d", m.MTU, m.Pointer)
	}

	// Parsing into a used Message gives the same result as a fresh one.
	dirty := Message{Kind: KindPacketTooBig, MTU: 9, Payload: b, Extensions: b, Quote: Quote{Valid: true, Payload: b, Src: routerAddr}}
	if err := Parse(fam, b, &dirty); err != nil || !reflect.DeepEqual(&dirty, m) {
		t.Fatalf("Parse into a used Message differs: %+v", dirty)
	}

	q := &m.Quote
	if q.Valid {
		if (q.Family == IPv4) != (q.Src.Is4() && q.Dst.Is4()) || (q.Family != IPv4 && q.Family != IPv6) {
			t.Fatalf("quote family %v with addresses %v %v", q.Family, q.Src, q.Dst)
		}
	} else if q.Payload != nil || q.Src.IsValid() || q.SrcPort != 0 {
		t.Fatalf("invalid quote has fields: %+v", q)
	}

	if m.Extensions != nil {
		if len(m.Extensions) < extensionHeaderLen || m.Extensions[0]>>4 != extensionVersion {
			t.Fatalf("extensions without a version-2 header: % x", m.Extensions)
		}
		checkExtensions(t, m.Extensions)
	}

	switch m.Kind {
	case KindEchoRequest, KindEchoReply:
		var re []byte
		if m.Kind == KindEchoRequest {
			re = AppendEchoRequest(nil, fam, m.ID, m.Seq, m.Payload)
		} else {
			re = AppendEchoReply(nil, fam, m.ID, m.Seq, m.Payload)
		}
		var m2 Message
		if err := Parse(fam, re, &m2); err != nil {
			t.Fatalf("re-encoded echo: %v", err)
		}
		if m2.Kind != m.Kind || m2.ID != m.ID || m2.Seq != m.Seq || !bytes.Equal(m2.Payload, m.Payload) || !m2.ChecksumOK {
			t.Fatalf("echo round trip: %+v -> %+v", m, m2)
		}
		// Code 0 messages re-encode to the same bytes, checksum aside
		// where the input's could not be verified.
		if m.Code == 0 {
			// 0x0000 and 0xffff are the two ones'-complement zeros: a received
			// 0xffff verifies, while the encoder always writes 0x0000 (RFC 1624).
			equivZero := binary.BigEndian.Uint16(re[2:4]) == 0 && binary.BigEndian.Uint16(b[2:4]) == 0xffff
			if fam == IPv6 || !m.ChecksumOK || equivZero {
				re[2], re[3] = b[2], b[3]
			}
			if !bytes.Equal(re, b) {
				t.Fatalf("echo re-encoding differs:\n% x\n% x", re, b)
			}
		}
	default:
		if m.Payload != nil || m.ID != 0 || m.Seq != 0 {
			t.Fatalf("echo fields on %v: %+v", m.Kind, m)
		}
	}
}

// within fails unless s is nil or lies inside b's backing array.
func within(t *testing.T, name string, b, s []byte) {
	t.Helper()
	if s == nil {
		return
	}
	if len(b) == 0 {
		t.Fatalf("%s is non-nil for empty input", name)
	}
	start := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	p := uintptr(unsafe.Pointer(unsafe.SliceData(s)))
	if p < start || p+uintptr(len(s)) > start+uintptr(len(b)) {
		t.Fatalf("%s (len %d) is outside the input (len %d)", name, len(s), len(b))
	}
}

func checkExtensions(t *testing.T, b []byte) {
	t.Helper()
	objs, err := ParseExtensions(b)
	if err != nil {
		if !errors.Is(err, ErrTooShort) && !errors.Is(err, ErrMalformed) {
			t.Fatalf("ParseExtensions error wraps no sentinel: %v", err)
		}
		if objs != nil {
			t.Fatalf("objects with error")
		}
		return
	}
	total := extensionHeaderLen
	for _, o := range objs {
		within(t, "ExtensionObject.Data", b, o.Data)
		total += objectHeaderLen + len(o.Data)
		if labels, ok := o.MPLS(); ok && len(labels)*4 != len(o.Data) {
			t.Fatalf("%d labels from %d bytes", len(labels), len(o.Data))
		}
		if info, ok := o.Interface(); ok {
			if info.Role > 3 || len(info.Name) > maxIfNameLen-1 || (o.CType&ifInfoMTU == 0 && info.HasMTU) {
				t.Fatalf("interface info %+v from c-type %#x", info, o.CType)
			}
		}
	}
	if total != len(b) {
		t.Fatalf("objects cover %d of %d bytes", total, len(b))
	}
}

func FuzzParseExtensions(f *testing.F) {
	for _, s := range parseSeeds(f) {
		var m Message
		if Parse(s.f, s.msg, &m) == nil && m.Extensions != nil {
			f.Add(m.Extensions)
		}
	}
	f.Add([]byte{0x20, 0, 0, 0, 0, 4, 1, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		checkExtensions(t, b)
	})
}

// TestFuzzCorpusFiles keeps the committed seed files in step with the
// builders above; run with -update-corpus to rewrite them.
func TestFuzzCorpusFiles(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzParse")
	for _, s := range parseSeeds(t) {
		in := append([]byte{familyPrefix(s.f)}, s.msg...)
		content := "go test fuzz v1\n[]byte(" + strconv.Quote(string(in)) + ")\n"
		path := filepath.Join(dir, s.name)
		if *updateCorpus {
			if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run go test -run TestFuzzCorpusFiles -update-corpus)", err)
		}
		if string(got) != content {
			t.Errorf("%s is stale (run go test -run TestFuzzCorpusFiles -update-corpus)", path)
		}
	}
}
