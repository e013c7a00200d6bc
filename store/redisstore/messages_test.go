package redisstore

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/mpsession/mpsession/internal/testenv"
	"github.com/redis/go-redis/v9"
)

// recv waits for the next message of in.
func recv(t *testing.T, in <-chan string, what string) string {
	t.Helper()
	select {
	case m := <-in:
		return m
	case <-time.After(5 * time.Second):
		t.Fatalf("%s: no message in 5 s", what)
		return ""
	}
}

func listenTo(t *testing.T, s *Store, topic string) (<-chan string, func()) {
	t.Helper()
	in := make(chan string, 100)
	stop, err := s.Listen(topic, func(msg []byte) { in <- string(msg) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return in, stop
}

// numsub returns how many connections Redis counts on channel: sharded on a Cluster
// (asked of the node that owns it), plain otherwise.
func numsub(t *testing.T, c redis.UniversalClient, channel string) (plain, sharded int64) {
	t.Helper()
	ctx := t.Context()
	if cc, ok := c.(*redis.ClusterClient); ok {
		node, err := cc.MasterForKey(ctx, channel)
		if err != nil {
			t.Fatal(err)
		}
		sharded = node.PubSubShardNumSub(ctx, channel).Val()[channel]
		plain = node.PubSubNumSub(ctx, channel).Val()[channel]
		return plain, sharded
	}
	return c.PubSubNumSub(ctx, channel).Val()[channel], c.PubSubShardNumSub(ctx, channel).Val()[channel]
}

// TestMessageSubscriptions: one Redis subscription per topic however many listeners
// it has, dropped with the last one, with the connection; on a Cluster the
// subscriptions are sharded, on the node that owns each channel.
func TestMessageSubscriptions(t *testing.T) {
	t.Parallel()
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			c := be.client(t)
			s := newStore(t, c, Config{})
			_, cluster := c.(*redis.ClusterClient)
			topics := make([]string, 20) // spread over the Cluster's nodes
			for i := range topics {
				topics[i] = fmt.Sprintf("r:room-%d", i)
			}
			var stops []func()
			for _, topic := range topics {
				for range 2 {
					_, stop := listenTo(t, s, topic)
					stops = append(stops, stop)
				}
			}
			channels, conns := s.listening()
			if channels != len(topics) {
				t.Errorf("want %d channels; got %d", len(topics), channels)
			}
			if want := 1; !cluster && conns != want {
				t.Errorf("want %d connection; got %d", want, conns)
			}
			if cluster && (conns < 2 || conns > 3) {
				t.Errorf("20 channels over a 3-node Cluster: want 2 or 3 connections, one per node; got %d", conns)
			}
			for _, topic := range topics {
				plain, sharded := numsub(t, c, s.msgChannel(topic))
				if cluster && (plain != 0 || sharded != 1) {
					t.Errorf("%s: want 1 sharded subscriber and no plain one; got %d sharded, %d plain", topic, sharded, plain)
				}
				if !cluster && (plain != 1 || sharded != 0) {
					t.Errorf("%s: want 1 subscriber; got %d plain, %d sharded", topic, plain, sharded)
				}
			}
			for _, stop := range stops {
				stop()
			}
			deadline := time.Now().Add(5 * time.Second)
			for {
				channels, conns := s.listening()
				plain, sharded := numsub(t, c, s.msgChannel(topics[0]))
				if channels == 0 && conns == 0 && plain == 0 && sharded == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("after the last listener: want no channel, connection or subscriber; got %d, %d, %d+%d", channels, conns, plain, sharded)
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
}

// TestMessageReconnect: after the server drops the subscription's connection, go-redis
// resubscribes, and messages flow again.
func TestMessageReconnect(t *testing.T) {
	t.Parallel()
	srv := testenv.StartRedis(t)
	c := redis.NewClient(&redis.Options{Addr: srv.Addr, ContextTimeoutEnabled: true})
	t.Cleanup(func() { c.Close() })
	s := newStore(t, c, Config{})
	in, _ := listenTo(t, s, "u:reconnect")
	ctx := t.Context()
	if err := s.Publish(ctx, "u:reconnect", []byte("before")); err != nil {
		t.Fatal(err)
	}
	if got := recv(t, in, "before the reconnect"); got != "before" {
		t.Fatalf("want before; got %q", got)
	}
	if err := c.ClientKillByFilter(ctx, "TYPE", "pubsub").Err(); err != nil {
		t.Fatal(err)
	}
	// Messages published while go-redis reconnects are lost: publish until one
	// arrives, then check that the later ones all do, in order.
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; ; i++ {
		if err := s.Publish(ctx, "u:reconnect", []byte(fmt.Sprint("probe ", i))); err != nil {
			t.Fatal(err)
		}
		select {
		case <-in:
		case <-time.After(50 * time.Millisecond):
			if time.Now().After(deadline) {
				t.Fatal("no message 10 s after the connection was killed")
			}
			continue
		}
		break
	}
	for len(in) > 0 {
		<-in
	}
	for i := range 10 {
		if err := s.Publish(ctx, "u:reconnect", []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 10 {
		if got := recv(t, in, "after the reconnect"); got != fmt.Sprint(i) {
			t.Fatalf("want %d; got %q", i, got)
		}
	}
}

// TestMessageListenDown: Listen fails with a clear error when Redis is unreachable,
// and works once it is back.
func TestMessageListenDown(t *testing.T) {
	t.Parallel()
	srv := testenv.StartRedis(t)
	c := redis.NewClient(&redis.Options{Addr: srv.Addr, ContextTimeoutEnabled: true, MaxRetries: -1})
	t.Cleanup(func() { c.Close() })
	s := newStore(t, c, Config{})
	srv.Stop()
	start := time.Now()
	if _, err := s.Listen("u:down", func([]byte) {}); err == nil {
		t.Fatal("Listen with Redis down: want an error")
	} else {
		t.Logf("Listen with Redis down: %v after %v", err, time.Since(start).Round(time.Millisecond))
	}
	if err := s.Publish(context.Background(), "u:down", []byte("x")); err == nil {
		t.Fatal("Publish with Redis down: want an error")
	}
	if channels, conns := s.listening(); channels != 0 {
		t.Errorf("after a failed Listen: want no channel; got %d on %d connections", channels, conns)
	}
	srv.Start(t)
	in, _ := listenTo(t, s, "u:down")
	if err := s.Publish(context.Background(), "u:down", []byte("back")); err != nil {
		t.Fatal(err)
	}
	if got := recv(t, in, "after Redis came back"); got != "back" {
		t.Errorf("want back; got %q", got)
	}
}
