package fibermp_test

import (
	"context"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/mpsession/mpsession/fibermp"
	"github.com/mpsession/mpsession/store"
	"github.com/mpsession/mpsession/store/memstore"
)

// failDelete fails every Delete, as a store that went down between a request's load
// and its logout.
type failDelete struct{ store.Store }

func (failDelete) Delete(ctx context.Context, id string) error { return errDown }

// TestLogoutDeleteFails: a logout whose Delete fails answers 503 at once.
func TestLogoutDeleteFails(t *testing.T) {
	t.Parallel()
	mem := memstore.New()
	defer mem.Close()
	h := newHarness(t, fibermp.Config{Protocol: fibermp.Wafer, Store: failDelete{mem}}, func(app fiber.Router) {
		app.Post("/destroy", fibermp.Required(), func(c *fiber.Ctx) error { return fibermp.Get(c).Destroy() })
	})
	hdr := loginWafer(t, h, "o-dl")
	done := make(chan reply, 1)
	go func() { done <- h.do(t, "POST", "/logout", hdr, "") }()
	select {
	case r := <-done:
		if r.status != 503 {
			t.Errorf("logout with the store failing: want 503; got %d %s", r.status, r.body)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("POST /logout hangs")
	}
}
