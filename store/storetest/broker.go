package storetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mpsession/mpsession/store"
)

// brokerTests check store.Broker, for stores that implement it; for the others they
// pass at once.
func (s *suite) brokerTests() []test {
	return []test{
		{"Order", s.testBrokerOrder},
		{"TwoListeners", s.testBrokerTwoListeners},
		{"Stop", s.testBrokerStop},
		{"OtherTopic", s.testBrokerOtherTopic},
		{"NotKept", s.testBrokerNotKept},
		{"StopInListener", s.testBrokerStopInListener},
		{"BadTopic", s.testBrokerBadTopic},
		{"CrossProcess", s.testBrokerCrossProcess},
	}
}

// brokers returns the store under test as a Broker, and a second one sharing its
// backend (the same store for in-process stores); ok is false when the store is no
// Broker.
func (s *suite) brokers(t *testing.T) (pub, sub store.Broker, ok bool) {
	t.Helper()
	st := s.newStore(t)
	b := st.Capabilities().Broker
	if b == nil {
		t.Logf("%T carries no messages (Capabilities().Broker is nil): nothing to check", st)
		return nil, nil, false
	}
	if s.cfg.CrossProcess == nil {
		return b, b, true
	}
	b2 := s.cfg.CrossProcess(t, st).Capabilities().Broker
	if b2 == nil {
		t.Fatal("storetest: the CrossProcess store is no store.Broker, but the store is")
	}
	return b, b2, true
}

// inbox collects what a listener receives.
type inbox chan string

func listen(t *testing.T, b store.Broker, topic string) (inbox, func()) {
	t.Helper()
	in := make(inbox, 4096)
	stop, err := b.Listen(topic, func(msg []byte) { in <- string(msg) })
	if err != nil {
		t.Fatalf("Listen(%q): %v", topic, err)
	}
	t.Cleanup(stop)
	return in, stop
}

func publish(t *testing.T, b store.Broker, topic, msg string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := b.Publish(ctx, topic, []byte(msg)); err != nil {
		t.Fatalf("Publish(%q, %q): %v", topic, msg, err)
	}
}

// want waits for the next message of in and checks it.
func (in inbox) want(t *testing.T, what, want string) {
	t.Helper()
	select {
	case got := <-in:
		if got != want {
			t.Errorf("%s: want %q; got %q", what, want, got)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("%s: want %q; got nothing in 5 s", what, want)
	}
}

// empty checks that in holds nothing now.
func (in inbox) empty(t *testing.T, what string) {
	t.Helper()
	select {
	case got := <-in:
		t.Errorf("%s: want nothing; got %q", what, got)
	default:
	}
}

func newTopic(name string) string { return newID("topic-" + name + "-") }

// testBrokerOrder: the messages of one publisher arrive in order, binary ones intact.
func (s *suite) testBrokerOrder(t *testing.T) {
	pub, sub, ok := s.brokers(t)
	if !ok {
		return
	}
	topic := newTopic("order")
	in, _ := listen(t, sub, topic)
	const n = 500
	for i := range n {
		publish(t, pub, topic, fmt.Sprintf("m%d\x00\xff", i))
	}
	for i := range n {
		in.want(t, "message", fmt.Sprintf("m%d\x00\xff", i))
	}
	publish(t, pub, topic, "")
	in.want(t, "empty message", "")
}

// testBrokerTwoListeners: each listener of a topic gets every message, also when
// both are on one store.
func (s *suite) testBrokerTwoListeners(t *testing.T) {
	pub, sub, ok := s.brokers(t)
	if !ok {
		return
	}
	topic := newTopic("two")
	a, _ := listen(t, sub, topic)
	b, _ := listen(t, sub, topic)
	c, _ := listen(t, pub, topic)
	for i := range 3 {
		publish(t, pub, topic, fmt.Sprint(i))
	}
	for i := range 3 {
		a.want(t, "first listener", fmt.Sprint(i))
		b.want(t, "second listener", fmt.Sprint(i))
		c.want(t, "listener on the publisher's store", fmt.Sprint(i))
	}
}

// testBrokerStop: a listener stopped receives nothing more; the others go on, and a
// topic whose last listener stopped can be listened to again.
func (s *suite) testBrokerStop(t *testing.T) {
	pub, sub, ok := s.brokers(t)
	if !ok {
		return
	}
	topic := newTopic("stop")
	stays, _ := listen(t, sub, topic)
	leaves, stop := listen(t, sub, topic)
	publish(t, pub, topic, "both")
	stays.want(t, "staying listener", "both")
	leaves.want(t, "leaving listener", "both")
	stop()
	stop() // twice is fine
	publish(t, pub, topic, "after stop")
	stays.want(t, "staying listener", "after stop")
	// One store delivers a topic's messages to its listeners in turn: the stopped
	// listener would have had it by now.
	leaves.empty(t, "stopped listener")

	other := newTopic("relisten")
	in, stop := listen(t, sub, other)
	stop()
	in2, _ := listen(t, sub, other)
	publish(t, pub, other, "again")
	in2.want(t, "listener after the last one stopped", "again")
	in.empty(t, "stopped listener")
}

// testBrokerOtherTopic: a message on a topic nobody listens to reaches no one, and
// costs no error.
func (s *suite) testBrokerOtherTopic(t *testing.T) {
	pub, sub, ok := s.brokers(t)
	if !ok {
		return
	}
	topic, nobody := newTopic("heard"), newTopic("unheard")
	in, _ := listen(t, sub, topic)
	publish(t, pub, nobody, "lost")
	publish(t, pub, topic, "heard")
	in.want(t, "listener of another topic", "heard")
	in.empty(t, "listener of another topic")
}

// testBrokerNotKept: a listener never gets what was published before it listened.
func (s *suite) testBrokerNotKept(t *testing.T) {
	pub, sub, ok := s.brokers(t)
	if !ok {
		return
	}
	topic := newTopic("kept")
	publish(t, pub, topic, "before")
	in, _ := listen(t, sub, topic)
	publish(t, pub, topic, "after")
	in.want(t, "listener", "after")
}

// testBrokerStopInListener: a listener may stop itself from its callback.
func (s *suite) testBrokerStopInListener(t *testing.T) {
	pub, sub, ok := s.brokers(t)
	if !ok {
		return
	}
	topic := newTopic("self")
	got := make(chan string, 10)
	var stop func()
	ready := make(chan struct{})
	stop, err := sub.Listen(topic, func(msg []byte) {
		<-ready
		got <- string(msg)
		stop()
	})
	if err != nil {
		t.Fatal(err)
	}
	close(ready)
	t.Cleanup(stop)
	witness, _ := listen(t, sub, topic)
	publish(t, pub, topic, "one")
	publish(t, pub, topic, "two")
	witness.want(t, "witness", "one")
	witness.want(t, "witness", "two")
	inbox(got).want(t, "self-stopping listener", "one")
	inbox(got).empty(t, "self-stopping listener")
}

// testBrokerBadTopic: empty and overlong topics are store.ErrTopic.
func (s *suite) testBrokerBadTopic(t *testing.T) {
	pub, _, ok := s.brokers(t)
	if !ok {
		return
	}
	for _, topic := range []string{"", strings.Repeat("x", store.MaxTopicBytes+1)} {
		if err := pub.Publish(context.Background(), topic, nil); !errors.Is(err, store.ErrTopic) {
			t.Errorf("Publish to a %d-byte topic: want store.ErrTopic; got %v", len(topic), err)
		}
		if _, err := pub.Listen(topic, func([]byte) {}); !errors.Is(err, store.ErrTopic) {
			t.Errorf("Listen to a %d-byte topic: want store.ErrTopic; got %v", len(topic), err)
		}
	}
	topic := strings.Repeat("y", store.MaxTopicBytes)
	in, _ := listen(t, pub, topic)
	publish(t, pub, topic, "longest")
	in.want(t, "longest topic", "longest")
}

// testBrokerCrossProcess: two publishers in two processes, listeners in both; each
// listener sees each publisher's messages in order.
func (s *suite) testBrokerCrossProcess(t *testing.T) {
	pub, sub, ok := s.brokers(t)
	if !ok {
		return
	}
	topic := newTopic("cross")
	ins := []inbox{}
	for _, b := range []store.Broker{pub, sub} {
		in, _ := listen(t, b, topic)
		ins = append(ins, in)
	}
	const n = 100
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range n {
			if err := sub.Publish(context.Background(), topic, []byte(fmt.Sprintf("b%d", i))); err != nil {
				t.Errorf("Publish: %v", err)
				return
			}
		}
	}()
	for i := range n {
		publish(t, pub, topic, fmt.Sprintf("a%d", i))
	}
	<-done
	for j, in := range ins {
		next := map[byte]int{'a': 0, 'b': 0}
		for range 2 * n {
			select {
			case m := <-in:
				if want := fmt.Sprintf("%c%d", m[0], next[m[0]]); m != want {
					t.Fatalf("listener %d: want %q; got %q", j, want, m)
				}
				next[m[0]]++
			case <-time.After(5 * time.Second):
				t.Fatalf("listener %d: got %v of %d messages", j, next, 2*n)
			}
		}
	}
}
