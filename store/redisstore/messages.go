package redisstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mpsession/mpsession/store/storekit"
	"github.com/redis/go-redis/v9"
)

// Application messages (store.Broker) travel on one Redis channel per topic,
// "<prefix>m:{<topic>}", so a process receives only the topics it listens to. On a
// Cluster they use sharded pub/sub (SPUBLISH, SSUBSCRIBE): a message crosses only the
// shard that owns its channel, instead of every node of the Cluster.
//
// A Store subscribes to a channel when the first listener of its topic appears and
// unsubscribes when the last one leaves, on a pub/sub connection of its own (one per
// Cluster node that owns a subscribed channel), not the events connection. The
// connection closes when no topic is left.

// messages is a Store's message subscriptions.
type messages struct {
	mu     sync.Mutex
	topics map[string]*msgTopic // by channel
	conns  map[string]*msgConn  // by node address; "" on a single node
}

// msgTopic is one subscribed channel and its listeners.
type msgTopic struct {
	conn      *msgConn
	listeners []*msgListener // replaced, never changed in place
	confirmed bool           // Redis confirmed the subscription
	ready     chan struct{}  // closed when confirmed, or when subscribing failed
	err       error          // why subscribing failed
}

type msgListener struct {
	fn     func(msg []byte)
	active atomic.Bool
}

// msgConn is one pub/sub connection: the SUBSCRIBE and UNSUBSCRIBE commands waiting to
// be written, in the order the listeners came and went, and the connection's delivery
// goroutine. A writer goroutine runs while commands wait.
type msgConn struct {
	node    string
	ps      *redis.PubSub // nil until the first SUBSCRIBE
	done    chan struct{} // closed when the delivery goroutine returns
	ops     []msgOp
	writing bool
	topics  int // topics on this connection
	// unconfirmed counts the SUBSCRIBEs of a channel that Redis has not confirmed
	// yet: a topic whose last listener left before the confirmation, and that a new
	// listener subscribes again, must wait for the confirmation of its own SUBSCRIBE,
	// not take its predecessor's (an UNSUBSCRIBE is between them).
	unconfirmed map[string]int
}

type msgOp struct {
	channel   string
	subscribe bool
}

// msgChannel is topic's channel. The braces put it in the Cluster slot of the topic's
// history (history.go), so that one script can keep a message and publish it.
func (s *Store) msgChannel(topic string) string { return s.prefix + "m:{" + topic + "}" }

// Publish implements store.Broker with PUBLISH, or SPUBLISH on a Cluster. It costs one
// round trip, bounded by ctx.
func (s *Store) Publish(ctx context.Context, topic string, msg []byte) error {
	if err := storekit.CheckTopic(topic); err != nil {
		return err
	}
	var err error
	switch c := s.client.(type) {
	case *redis.ClusterClient:
		err = c.SPublish(ctx, s.msgChannel(topic), msg).Err()
	case *redis.Ring:
		err = errRing
	default:
		err = c.Publish(ctx, s.msgChannel(topic), msg).Err()
	}
	if err != nil {
		return s.fail(ctx, "publish", err)
	}
	return nil
}

var errRing = errors.New("messages need a single node, Sentinel or Cluster client, not a Ring")

// Listen implements store.Broker. The first listener of a topic subscribes to its
// channel and waits at most Config.SubscribeTimeout for Redis to confirm; later
// listeners of the topic wait for that confirmation too, then share the subscription.
//
// go-redis reconnects and resubscribes after a network error; the messages published
// while the connection was down are lost, and listeners are not told. After a Cluster
// resharding moves a subscribed channel to another node, Redis ends its subscription:
// its listeners receive nothing more until they Listen again.
//
// Stop the listeners before closing the Store: Close does not end them.
func (s *Store) Listen(topic string, fn func(msg []byte)) (stop func(), err error) {
	if err := storekit.CheckTopic(topic); err != nil {
		return nil, err
	}
	if fn == nil {
		return nil, errors.New("redisstore: listen: nil func")
	}
	ch := s.msgChannel(topic)
	node := ""
	switch c := s.client.(type) {
	case *redis.ClusterClient:
		ctx, cancel := context.WithTimeout(context.Background(), s.subscribeTimeout)
		master, err := c.MasterForKey(ctx, ch)
		if err != nil {
			err = s.fail(ctx, "listen", err)
		}
		cancel()
		if err != nil {
			return nil, err
		}
		node = master.Options().Addr
	case *redis.Ring:
		return nil, fmt.Errorf("redisstore: listen: %w", errRing)
	}

	l := &msgListener{fn: fn}
	l.active.Store(true)
	m := &s.msgs
	m.mu.Lock()
	t := m.topics[ch]
	if t == nil {
		if m.topics == nil {
			m.topics, m.conns = map[string]*msgTopic{}, map[string]*msgConn{}
		}
		c := m.conns[node]
		if c == nil {
			c = &msgConn{node: node}
			m.conns[node] = c
		}
		t = &msgTopic{conn: c, ready: make(chan struct{})}
		m.topics[ch] = t
		c.topics++
		s.queueOp(c, msgOp{channel: ch, subscribe: true})
	}
	t.listeners = append(t.listeners[:len(t.listeners):len(t.listeners)], l)
	m.mu.Unlock()

	var once sync.Once
	stop = func() { once.Do(func() { s.unlisten(ch, t, l) }) }
	timer := time.NewTimer(s.subscribeTimeout)
	defer timer.Stop()
	select {
	case <-t.ready:
		m.mu.Lock()
		err = t.err
		m.mu.Unlock()
	case <-timer.C:
		err = fmt.Errorf("redis did not confirm the subscription within %v", s.subscribeTimeout)
	}
	if err != nil {
		stop()
		return nil, fmt.Errorf("redisstore: listen: %w", err)
	}
	return stop, nil
}

// unlisten removes l from t, and unsubscribes when l was the last listener.
func (s *Store) unlisten(ch string, t *msgTopic, l *msgListener) {
	l.active.Store(false)
	m := &s.msgs
	m.mu.Lock()
	defer m.mu.Unlock()
	i := slices.Index(t.listeners, l)
	if i < 0 {
		return
	}
	t.listeners = slices.Delete(slices.Clone(t.listeners), i, i+1)
	if len(t.listeners) > 0 || m.topics[ch] != t {
		return
	}
	delete(m.topics, ch)
	if !t.confirmed && t.err == nil {
		t.err = errors.New("unsubscribed before Redis confirmed")
		close(t.ready)
	}
	t.conn.topics--
	s.queueOp(t.conn, msgOp{channel: ch})
}

// queueOp queues a command on c and starts its writer if none runs; s.msgs.mu must be
// held.
func (s *Store) queueOp(c *msgConn, op msgOp) {
	if op.subscribe {
		if c.unconfirmed == nil {
			c.unconfirmed = map[string]int{}
		}
		c.unconfirmed[op.channel]++
	}
	c.ops = append(c.ops, op)
	if !c.writing {
		c.writing = true
		go s.writeOps(c)
	}
}

// writeOps writes c's queued commands, consecutive ones of a kind in one command, until
// none is left; then, if c holds no topic any more, it closes the connection.
func (s *Store) writeOps(c *msgConn) {
	m := &s.msgs
	for {
		m.mu.Lock()
		if len(c.ops) == 0 {
			c.writing = false
			var ps *redis.PubSub
			if c.topics == 0 {
				if m.conns[c.node] == c {
					delete(m.conns, c.node)
				}
				ps, c.ps = c.ps, nil
			}
			done := c.done
			m.mu.Unlock()
			if ps != nil {
				_ = ps.Close()
				<-done
			}
			return
		}
		subscribe := c.ops[0].subscribe
		n := 1
		for n < len(c.ops) && c.ops[n].subscribe == subscribe {
			n++
		}
		channels := make([]string, n)
		for i, op := range c.ops[:n] {
			channels[i] = op.channel
		}
		c.ops = c.ops[n:]
		ps := c.ps
		m.mu.Unlock()

		err := s.writeOp(c, ps, subscribe, channels)
		if err != nil && subscribe {
			m.mu.Lock()
			for _, ch := range channels {
				s.confirmed(c, ch) // never to be
				if t := m.topics[ch]; t != nil && t.conn == c && !t.confirmed && t.err == nil {
					t.err = s.fail(context.Background(), "subscribe", err)
					close(t.ready)
				}
			}
			m.mu.Unlock()
		}
	}
}

// writeOp sends one SUBSCRIBE or UNSUBSCRIBE (their sharded forms on a Cluster) for
// channels, opening the connection for the first SUBSCRIBE. Redis confirms a
// subscription on the connection; the delivery goroutine reads the confirmation.
func (s *Store) writeOp(c *msgConn, ps *redis.PubSub, subscribe bool, channels []string) error {
	ctx, cancel := context.WithTimeout(context.Background(), s.subscribeTimeout)
	defer cancel()
	cc, sharded := s.client.(*redis.ClusterClient)
	if ps == nil {
		if !subscribe {
			return nil // the connection was never opened: nothing to unsubscribe
		}
		// Without channels go-redis connects on the first command, to the node that
		// owns the first channel when sharded.
		if sharded {
			ps = cc.SSubscribe(ctx)
			if err := ps.SSubscribe(ctx, channels...); err != nil {
				_ = ps.Close()
				return err
			}
		} else {
			ps = s.client.Subscribe(ctx)
			if err := ps.Subscribe(ctx, channels...); err != nil {
				_ = ps.Close()
				return err
			}
		}
		done := make(chan struct{})
		in := ps.ChannelWithSubscriptions(redis.WithChannelSize(1024))
		go s.deliver(c, in, done)
		s.msgs.mu.Lock()
		c.ps, c.done = ps, done
		s.msgs.mu.Unlock()
		return nil
	}
	switch {
	case subscribe && sharded:
		return ps.SSubscribe(ctx, channels...)
	case subscribe:
		return ps.Subscribe(ctx, channels...)
	case sharded:
		return ps.SUnsubscribe(ctx, channels...)
	default:
		return ps.Unsubscribe(ctx, channels...)
	}
}

// deliver calls the listeners of each message's topic, in the order Redis sent them,
// until the connection closes, and marks subscriptions confirmed.
func (s *Store) deliver(c *msgConn, in <-chan any, done chan<- struct{}) {
	defer close(done)
	m := &s.msgs
	for msg := range in {
		switch msg := msg.(type) {
		case *redis.Message:
			m.mu.Lock()
			var ls []*msgListener
			if t := m.topics[msg.Channel]; t != nil {
				ls = t.listeners
			}
			m.mu.Unlock()
			if len(ls) == 0 {
				continue
			}
			p := []byte(msg.Payload)
			for _, l := range ls {
				if l.active.Load() {
					l.fn(p)
				}
			}
		case *redis.Subscription:
			if msg.Kind != "subscribe" && msg.Kind != "ssubscribe" {
				continue
			}
			m.mu.Lock()
			last := s.confirmed(c, msg.Channel)
			if t := m.topics[msg.Channel]; last && t != nil && t.conn == c && !t.confirmed && t.err == nil {
				t.confirmed = true
				close(t.ready)
			}
			m.mu.Unlock()
		}
	}
}

// confirmed notes that one SUBSCRIBE of ch on c was confirmed (or failed), and reports
// whether it was the last one waiting: the one of ch's current topic. A confirmation
// when none waits (go-redis subscribing again after a reconnect) is the last too.
// s.msgs.mu must be held.
func (s *Store) confirmed(c *msgConn, ch string) bool {
	if n := c.unconfirmed[ch]; n > 1 {
		c.unconfirmed[ch] = n - 1
		return false
	}
	delete(c.unconfirmed, ch)
	return true
}

// listening returns how many channels the store is subscribed to and on how many
// connections, for tests.
func (s *Store) listening() (channels, conns int) {
	s.msgs.mu.Lock()
	defer s.msgs.mu.Unlock()
	return len(s.msgs.topics), len(s.msgs.conns)
}
