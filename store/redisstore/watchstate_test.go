package redisstore

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
)

// replyError is an error Redis answered, as go-redis reports one.
type replyError string

func (e replyError) Error() string { return string(e) }
func (replyError) RedisError()     {}

var _ redis.Error = replyError("")

// settled returns w's error once its ready is closed, and fails if it is not.
func settled(t *testing.T, what string, w *watch) error {
	t.Helper()
	select {
	case <-w.ready:
		return w.err
	default:
		t.Fatalf("%s: not settled", what)
		return nil
	}
}

// TestWatchSettledByConfirmation drives the feed's bookkeeping through the replies of
// a connection lost between a SUBSCRIBE and its mark: each watch is settled by its own
// channel's confirmation, not by its place among the replies. The first watch's
// SUBSCRIBE went out on a connection that broke before its mark's pong; go-redis
// subscribed the new connection to its channel, and Redis refused the second watch's
// SUBSCRIBE. The pong of the second mark must confirm the first and fail the second.
func TestWatchSettledByConfirmation(t *testing.T) {
	noop := func(context.Context, *redis.PubSub) error { return nil }
	e := &eventFeed{wake: make(chan struct{}, 1)}
	w1 := e.hold("ch1", "ch1", noop)
	w2 := e.hold("ch2", "ch2", noop)
	e.subscription("subscribe", "ch1") // the resubscription's reply
	e.refused(replyError("NOPERM this user has no permissions to access one of the channels used as arguments"))
	e.marked(w2.mark)
	if err := settled(t, "the watch confirmed on the new connection", w1); err != nil {
		t.Errorf("the watch confirmed on the new connection: want it live; got %v", err)
	}
	err := settled(t, "the refused watch", w2)
	if rerr := redis.Error(nil); !errors.As(err, &rerr) || !strings.Contains(err.Error(), "NOPERM") {
		t.Errorf("the refused watch: want Redis's refusal; got %v", err)
	}

	// An unsubscription undoes a confirmation: it answers the UNSUBSCRIBE of an earlier
	// watch of the channel, whose SUBSCRIBE was confirmed before the new one's came.
	e.release("ch2", w2)
	w3 := e.hold("ch3", "ch3", noop)
	e.subscription("subscribe", "ch3")
	e.subscription("unsubscribe", "ch3")
	e.marked(w3.mark)
	if err := settled(t, "a watch whose only confirmation was undone", w3); err == nil {
		t.Error("a watch whose only confirmation was undone: want an error; got nil")
	}

	// A confirmation read on a connection that broke before the mark's pong counts for
	// nothing on the new one, where Redis refused the resubscription.
	w4 := e.hold("ch4", "ch4", noop)
	e.subscription("subscribe", "ch4")
	e.connectionLost()
	e.refused(replyError("NOPERM this user has no permissions to access one of the channels used as arguments"))
	e.marked(w4.mark)
	if err := settled(t, "a watch confirmed on a connection since lost", w4); err == nil {
		t.Error("a watch confirmed on a connection since lost, refused on the new one: want an error; got nil")
	}

	// A refused pattern is unsubscribed, so that go-redis does not send it again on
	// every new connection, and the next hold makes a new watch.
	p := e.hold("", "prefix:events:*", noop)
	queued := len(e.queue)
	e.marked(p.mark)
	if err := settled(t, "the refused pattern", p); err == nil {
		t.Fatal("the refused pattern: want an error; got nil")
	}
	if len(e.queue) != queued+1 {
		t.Errorf("commands queued by the pattern's refusal: want 1 (its PUNSUBSCRIBE); got %d", len(e.queue)-queued)
	}
	if again := e.hold("", "prefix:events:*", noop); again == p {
		t.Error("a hold of a refused pattern: want a new watch; got the refused one")
	}

	// Once the feed is stopped (Close), a hold fails, even of a channel watched and
	// confirmed before.
	w5 := e.hold("ch5", "ch5", noop)
	e.subscription("subscribe", "ch5")
	e.marked(w5.mark)
	e.cmdMu.Lock()
	e.stopped = true
	e.cmdMu.Unlock()
	if err := settled(t, "a hold after Close", e.hold("ch5", "ch5", noop)); !errors.Is(err, errStoreClosed) {
		t.Errorf("a hold after Close of a channel watched before: want errStoreClosed; got %v", err)
	}
}
