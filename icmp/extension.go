package icmp

import (
	"encoding/binary"
	"fmt"
	"net/netip"
)

// ExtensionObject is one object of an RFC 4884 extension structure. Data is
// the object payload, after its 4-byte header, and aliases the input of
// ParseExtensions. It is a plain value, safe to read concurrently.
type ExtensionObject struct {
	Class, CType uint8
	Data         []byte
}

// ParseExtensions decodes an RFC 4884 extension structure, as found in
// Message.Extensions: a version-2 header whose checksum, when non-zero,
// must be correct, followed by objects whose stated lengths must fit
// exactly. Errors wrap ErrTooShort or ErrMalformed. It allocates the
// returned slice (extensions are not on the hot path) and never panics.
func ParseExtensions(b []byte) ([]ExtensionObject, error) {
	if len(b) < extensionHeaderLen {
		return nil, fmt.Errorf("%w: extension structure of %d bytes", ErrTooShort, len(b))
	}
	if v := b[0] >> 4; v != extensionVersion {
		return nil, fmt.Errorf("%w: extension version %d", ErrMalformed, v)
	}
	// A zero checksum means the sender did not compute one (RFC 4884).
	if binary.BigEndian.Uint16(b[2:4]) != 0 && Checksum(b) != 0 {
		return nil, fmt.Errorf("%w: bad extension checksum", ErrMalformed)
	}
	var objs []ExtensionObject
	for rest := b[extensionHeaderLen:]; len(rest) > 0; {
		if len(rest) < objectHeaderLen {
			return nil, fmt.Errorf("%w: %d stray bytes after extension objects", ErrMalformed, len(rest))
		}
		n := int(binary.BigEndian.Uint16(rest[0:2]))
		if n < objectHeaderLen || n > len(rest) {
			return nil, fmt.Errorf("%w: extension object length %d with %d bytes left", ErrMalformed, n, len(rest))
		}
		objs = append(objs, ExtensionObject{Class: rest[2], CType: rest[3], Data: rest[objectHeaderLen:n:n]})
		rest = rest[n:]
	}
	return objs, nil
}

// RFC 4884 structure, extension object classes and types.
const (
	extensionHeaderLen = 4
	extensionVersion   = 2
	objectHeaderLen    = 4
	classMPLS          = 1 // RFC 4950
	ctypeMPLSIncoming  = 1
	classInterfaceInfo = 2 // RFC 5837
	ifInfoIfIndex      = 0x08
	ifInfoIPAddr       = 0x04
	ifInfoName         = 0x02
	ifInfoMTU          = 0x01
	afiIPv4            = 1 // IANA address family numbers
	afiIPv6            = 2
	maxIfNameLen       = 64
)

// MPLSLabel is one entry of an RFC 4950 MPLS label stack, as received by
// the router that sent the ICMP message. It is a plain value.
type MPLSLabel struct {
	Label uint32 // 20 bits
	TC    uint8  // traffic class (formerly EXP), 3 bits
	S     bool   // bottom of stack
	TTL   uint8
}

// MPLS decodes an RFC 4950 incoming MPLS label stack object (class 1,
// c-type 1). ok is false for other objects and for a stack that is empty
// or not a whole number of 4-byte entries.
func (o ExtensionObject) MPLS() (labels []MPLSLabel, ok bool) {
	if o.Class != classMPLS || o.CType != ctypeMPLSIncoming || len(o.Data) == 0 || len(o.Data)%4 != 0 {
		return nil, false
	}
	labels = make([]MPLSLabel, 0, len(o.Data)/4)
	for d := o.Data; len(d) >= 4; d = d[4:] {
		v := binary.BigEndian.Uint32(d)
		labels = append(labels, MPLSLabel{
			Label: v >> 12,
			TC:    uint8(v>>9) & 0x7,
			S:     v&0x100 != 0,
			TTL:   uint8(v),
		})
	}
	return labels, true
}

// InterfaceInfo is an RFC 5837 interface information object: which
// interface of the replying router the probe arrived on (Role 0), left by
// (Role 2), and so on. Fields whose sub-object is absent are zero; Addr is
// the zero Addr when no address was sent. It is a plain value.
type InterfaceInfo struct {
	Role       uint8 // 0 incoming, 1 sub-IP component of incoming, 2 outgoing, 3 next hop
	IfIndex    uint32
	Addr       netip.Addr
	Name       string
	MTU        uint32
	HasIfIndex bool
	HasMTU     bool
}

// Interface decodes an RFC 5837 interface information object (class 2).
// The c-type says which sub-objects follow, in the order ifIndex, IP
// address, name, MTU. ok is false for other objects and when a sub-object
// is cut short, has an unknown address family or a bad name length.
func (o ExtensionObject) Interface() (info InterfaceInfo, ok bool) {
	if o.Class != classInterfaceInfo {
		return InterfaceInfo{}, false
	}
	info.Role = o.CType >> 6
	d := o.Data
	if o.CType&ifInfoIfIndex != 0 {
		if len(d) < 4 {
			return InterfaceInfo{}, false
		}
		info.IfIndex, info.HasIfIndex = binary.BigEndian.Uint32(d), true
		d = d[4:]
	}
	if o.CType&ifInfoIPAddr != 0 {
		if len(d) < 4 {
			return InterfaceInfo{}, false
		}
		afi := binary.BigEndian.Uint16(d)
		d = d[4:]
		switch {
		case afi == afiIPv4 && len(d) >= 4:
			info.Addr = netip.AddrFrom4([4]byte(d[:4]))
			d = d[4:]
		case afi == afiIPv6 && len(d) >= 16:
			info.Addr = netip.AddrFrom16([16]byte(d[:16]))
			d = d[16:]
		default:
			return InterfaceInfo{}, false
		}
	}
	if o.CType&ifInfoName != 0 {
		// The length octet counts itself and is a multiple of 4 so that
		// the following sub-object stays aligned.
		if len(d) < 1 {
			return InterfaceInfo{}, false
		}
		n := int(d[0])
		if n < 4 || n > maxIfNameLen || n%4 != 0 || n > len(d) {
			return InterfaceInfo{}, false
		}
		name := d[1:n]
		for len(name) > 0 && name[len(name)-1] == 0 {
			name = name[:len(name)-1]
		}
		info.Name = string(name)
		d = d[n:]
	}
	if o.CType&ifInfoMTU != 0 {
		if len(d) < 4 {
			return InterfaceInfo{}, false
		}
		info.MTU, info.HasMTU = binary.BigEndian.Uint32(d), true
	}
	return info, true
}
