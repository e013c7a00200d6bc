package fiberstore

import (
	"testing"

	"github.com/gofiber/storage/memory/v2"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// gofiber's memory driver starts a clock goroutine once per process (behind a
	// sync.Once) and never stops it. Start it before goleak takes its snapshot, so that
	// only that goroutine is ignored, whatever the compiler names it.
	memory.New().Close()
	goleak.VerifyTestMain(m, goleak.IgnoreCurrent())
}
