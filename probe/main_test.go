package probe

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine outlives them: engines must stop their
// readers and timers on Close.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
