//go:build !linux

package rawsock

// ReadBatch reads a batch of packets; not implemented here.
func (c *Conn) ReadBatch([][]byte, []Packet) (int, error) { return 0, unsupported("read") }

func (c *Conn) writeBatch([]Message) (int, error) { return 0, unsupported("write") }
