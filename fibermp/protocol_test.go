package fibermp

import (
	"testing"

	"github.com/mpsession/mpsession/internal/session"
)

// TestProtocolValues checks that the protocols have the values the session core gives
// them: the middleware converts one to the other.
func TestProtocolValues(t *testing.T) {
	t.Parallel()
	for p, want := range map[Protocol]session.Protocol{Wafer: session.Wafer, Wafer2: session.Wafer2, Token: session.Token} {
		if session.Protocol(p) != want || p.String() != want.String() {
			t.Errorf("%v: want the core's %v", p, want)
		}
	}
}
