package storetest

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mpsession/mpsession/store"
)

// historyTests check store.History, for stores that implement it; for the others they
// pass at once.
func (s *suite) historyTests() []test {
	return []test{
		{"Positions", s.testHistoryPositions},
		{"Since", s.testHistorySince},
		{"Size", s.testHistorySize},
		{"Age", s.testHistoryAge},
		{"Concurrent", s.testHistoryConcurrent},
		{"Bad", s.testHistoryBad},
	}
}

// histories returns the store under test's History and a second one sharing its
// backend (the same for in-process stores), each with its Broker; ok is false when the
// store keeps no history.
func (s *suite) histories(t *testing.T) (pub, sub store.History, subBroker store.Broker, ok bool) {
	t.Helper()
	st := s.newStore(t)
	c := st.Capabilities()
	if c.History == nil {
		t.Logf("%T keeps no history (Capabilities().History is nil): nothing to check", st)
		return nil, nil, nil, false
	}
	if c.Broker == nil {
		t.Fatal("storetest: the store keeps a history but has no Broker")
	}
	if s.cfg.CrossProcess == nil {
		return c.History, c.History, c.Broker, true
	}
	c2 := s.cfg.CrossProcess(t, st).Capabilities()
	if c2.History == nil || c2.Broker == nil {
		t.Fatal("storetest: the CrossProcess store keeps no history, but the store does")
	}
	return c.History, c2.History, c2.Broker, true
}

var keepMany = store.Retention{Size: 1000, Age: time.Minute}

func keep(t *testing.T, h store.History, topic, msg string, r store.Retention) store.Position {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	pos, err := h.PublishKept(ctx, topic, []byte(msg), r)
	if err != nil {
		t.Fatalf("PublishKept(%q, %q): %v", topic, msg, err)
	}
	return pos
}

type sinceResult struct {
	msgs     []string
	last     store.Position
	complete bool
}

func since(t *testing.T, h store.History, topic string, after store.Position, limit int) sinceResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	kept, last, complete, err := h.Since(ctx, topic, after, limit)
	if err != nil {
		t.Fatalf("Since(%q, %v, %d): %v", topic, after, limit, err)
	}
	r := sinceResult{last: last, complete: complete}
	prev := after
	for _, k := range kept {
		if k.Pos.Epoch != last.Epoch || prev.Epoch == k.Pos.Epoch && k.Pos.Offset != prev.Offset+1 {
			t.Errorf("Since(%q, %v): message at %v after %v (last %v): want the next offset of the epoch", topic, after, k.Pos, prev, last)
		}
		prev = k.Pos
		r.msgs = append(r.msgs, string(k.Msg))
	}
	return r
}

// testHistoryPositions: kept messages get the offsets 1, 2, 3 of one epoch, and the
// listeners of every process receive them with their positions, in order.
func (s *suite) testHistoryPositions(t *testing.T) {
	pub, _, subBroker, ok := s.histories(t)
	if !ok {
		return
	}
	topic := newTopic("positions")
	in, _ := listen(t, subBroker, topic)
	var got []store.Position
	for i := range 3 {
		got = append(got, keep(t, pub, topic, fmt.Sprintf("m%d\x00\xff", i), keepMany))
	}
	if !store.ValidEpoch(got[0].Epoch) {
		t.Fatalf("first position %v: not a valid epoch", got[0])
	}
	for i, p := range got {
		if want := (store.Position{Epoch: got[0].Epoch, Offset: uint64(i + 1)}); p != want {
			t.Errorf("message %d kept at %v; want %v", i, p, want)
		}
		in.want(t, "listener", string(store.KeptMessage(p, fmt.Appendf(nil, "m%d\x00\xff", i))))
	}
	other := keep(t, pub, newTopic("positions-other"), "x", keepMany)
	if other.Offset != 1 {
		t.Errorf("first message of another topic kept at %v; want offset 1", other)
	}
}

// testHistorySince: Since returns what came after a position, from any process, and
// tells a position it cannot serve from one it can.
func (s *suite) testHistorySince(t *testing.T) {
	pub, sub, _, ok := s.histories(t)
	if !ok {
		return
	}
	topic := newTopic("since")
	start := since(t, sub, topic, store.Position{}, 10)
	if len(start.msgs) != 0 || !store.ValidEpoch(start.last.Epoch) || start.last.Offset != 0 || !start.complete {
		t.Fatalf("Since from the zero position on a topic with no history: want nothing, offset 0 of a new epoch, complete; got %+v", start)
	}
	if again := since(t, pub, topic, store.Position{}, 10); again.last != start.last {
		t.Errorf("Since from the zero position again: want %v; got %v", start.last, again.last)
	}
	var pos []store.Position
	for i := range 5 {
		pos = append(pos, keep(t, pub, topic, fmt.Sprint(i), keepMany))
	}
	if pos[0] != (store.Position{Epoch: start.last.Epoch, Offset: 1}) {
		t.Errorf("the first message after Since started the history: want offset 1 of %s; got %v", start.last.Epoch, pos[0])
	}
	last := pos[4]
	if r := since(t, sub, topic, start.last, 10); !r.complete || len(r.msgs) != 5 {
		t.Errorf("Since the history's start: want all 5, complete; got %+v", r)
	}
	if r := since(t, sub, newTopic("since-none"), store.Position{Epoch: "gone", Offset: 3}, 10); r.complete || !r.last.IsZero() {
		t.Errorf("Since a position on a topic with no history: want incomplete, no position; got %+v", r)
	}
	for _, tc := range []struct {
		what     string
		after    store.Position
		limit    int
		msgs     []string
		complete bool
	}{
		{"from the zero position", store.Position{}, 10, nil, true},
		{"after the first", pos[0], 10, []string{"1", "2", "3", "4"}, true},
		{"after the first, two at most", pos[0], 2, []string{"1", "2"}, true},
		{"after the last", last, 10, nil, true},
		{"from another epoch", store.Position{Epoch: "other", Offset: 1}, 10, nil, false},
		{"beyond the last", store.Position{Epoch: last.Epoch, Offset: last.Offset + 1}, 10, nil, false},
	} {
		r := since(t, sub, topic, tc.after, tc.limit)
		if !slices.Equal(r.msgs, tc.msgs) || r.last != last || r.complete != tc.complete {
			t.Errorf("Since %s: want %q, last %v, complete %v; got %q, %v, %v", tc.what, tc.msgs, last, tc.complete, r.msgs, r.last, r.complete)
		}
	}
	if r := since(t, sub, topic, store.Position{Epoch: last.Epoch, Offset: 2}, 10); !r.complete || len(r.msgs) != 3 {
		t.Errorf("Since a position written by hand: want 3 messages, complete; got %+v", r)
	}
}

// testHistorySize: the history keeps the newest Size messages, and a position before
// them is reported incomplete.
func (s *suite) testHistorySize(t *testing.T) {
	pub, sub, _, ok := s.histories(t)
	if !ok {
		return
	}
	topic := newTopic("size")
	r3 := store.Retention{Size: 3, Age: time.Minute}
	var pos []store.Position
	for i := range 8 {
		pos = append(pos, keep(t, pub, topic, fmt.Sprint(i), r3))
	}
	if r := since(t, sub, topic, pos[4], 10); !r.complete || !slices.Equal(r.msgs, []string{"5", "6", "7"}) {
		t.Errorf("Since within the kept 3: want 5 6 7, complete; got %+v", r)
	}
	if r := since(t, sub, topic, pos[3], 10); r.complete || r.last != pos[7] {
		t.Errorf("Since a position whose next message was dropped: want incomplete, last %v; got %+v", pos[7], r)
	}
	if r := since(t, sub, topic, pos[7], 10); !r.complete || len(r.msgs) != 0 {
		t.Errorf("Since the last position: want nothing, complete; got %+v", r)
	}
}

// testHistoryAge: messages older than Age are dropped, but the epoch and the last offset
// remain: a caller who missed nothing learns it.
func (s *suite) testHistoryAge(t *testing.T) {
	pub, sub, _, ok := s.histories(t)
	if !ok {
		return
	}
	topic := newTopic("age")
	short := store.Retention{Size: 100, Age: 100 * time.Millisecond}
	first := keep(t, pub, topic, "old", short)
	kept := time.Now()
	second := keep(t, pub, topic, "old too", short)
	// Age counts from when a message was kept; wait it out, and a bit more for the
	// backend's clock, then check.
	time.Sleep(time.Until(kept.Add(short.Age + 200*time.Millisecond)))
	third := keep(t, pub, topic, "new", short)
	if r := since(t, sub, topic, first, 10); r.complete {
		t.Errorf("Since a position whose next message is older than Age: want incomplete; got %+v", r)
	}
	if r := since(t, sub, topic, second, 10); !r.complete || !slices.Equal(r.msgs, []string{"new"}) {
		t.Errorf("Since the last old message: want new, complete; got %+v", r)
	}
	if r := since(t, sub, topic, third, 10); !r.complete || r.last != third {
		t.Errorf("Since the last message: want nothing, complete, last %v; got %+v", third, r)
	}
}

// testHistoryConcurrent: publishers on several processes at once get distinct offsets
// with no gap, and a listener receives them in offset order.
func (s *suite) testHistoryConcurrent(t *testing.T) {
	pub, sub, subBroker, ok := s.histories(t)
	if !ok {
		return
	}
	topic := newTopic("concurrent")
	type got struct {
		pos store.Position
		msg string
	}
	received := make(chan got, 1000)
	stop, err := subBroker.Listen(topic, func(b []byte) {
		pos, msg, err := store.ParseKept(b)
		if err != nil {
			t.Errorf("ParseKept(%q): %v", b, err)
			return
		}
		received <- got{pos, string(msg)}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	const writers, each = 4, 50
	var wg sync.WaitGroup
	for w := range writers {
		h := pub
		if w%2 == 1 {
			h = sub
		}
		wg.Go(func() {
			for i := range each {
				keep(t, h, topic, fmt.Sprintf("%d-%d", w, i), keepMany)
			}
		})
	}
	wg.Wait()
	seen := map[string]bool{}
	var epoch string
	for n := uint64(1); n <= writers*each; n++ {
		select {
		case g := <-received:
			if epoch == "" {
				epoch = g.pos.Epoch
			}
			if g.pos != (store.Position{Epoch: epoch, Offset: n}) || seen[g.msg] {
				t.Fatalf("message %d received: %v %q; want offset %d of epoch %s, once", n, g.pos, g.msg, n, epoch)
			}
			seen[g.msg] = true
		case <-time.After(5 * time.Second):
			t.Fatalf("received %d of %d messages", n-1, writers*each)
		}
	}
	r := since(t, sub, topic, store.Position{Epoch: epoch, Offset: 1}, writers*each)
	if !r.complete || len(r.msgs) != writers*each-1 {
		t.Errorf("Since the first: want %d messages, complete; got %d, %v", writers*each-1, len(r.msgs), r.complete)
	}
}

// testHistoryBad: bad topics, retentions and limits are refused.
func (s *suite) testHistoryBad(t *testing.T) {
	pub, _, _, ok := s.histories(t)
	if !ok {
		return
	}
	ctx := context.Background()
	if _, err := pub.PublishKept(ctx, "", []byte("x"), keepMany); err == nil {
		t.Error("PublishKept on an empty topic: want an error")
	}
	for _, r := range []store.Retention{{}, {Size: 1}, {Age: time.Second}, {Size: -1, Age: time.Second}} {
		if _, err := pub.PublishKept(ctx, newTopic("bad"), []byte("x"), r); err == nil {
			t.Errorf("PublishKept with retention %+v: want an error", r)
		}
	}
	if _, _, _, err := pub.Since(ctx, newTopic("bad"), store.Position{}, 0); err == nil {
		t.Error("Since with limit 0: want an error")
	}
}
