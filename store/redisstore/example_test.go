package redisstore_test

import (
	"context"
	"fmt"
	"time"

	"github.com/mpsession/mpsession/store"
	"github.com/mpsession/mpsession/store/redisstore"
	"github.com/redis/go-redis/v9"
)

func ExampleNew() {
	client := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: []string{"127.0.0.1:6379"}})
	defer client.Close()
	sessions := redisstore.New(client, redisstore.Config{Prefix: "myapp:"})
	defer sessions.Close()

	// Bound every call: while Redis is down, calls fail when ctx ends.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	rec := store.Record{Fields: map[string]string{"score": "0"}, Owner: "openid", Deadline: time.Now().Add(24 * time.Hour)}
	if err := sessions.Create(ctx, "session-id", rec, 30*time.Minute); err != nil {
		fmt.Println(err)
		return
	}
	score, err := sessions.Incr(ctx, "session-id", "score", 10)
	fmt.Println(score, err)
}

func ExampleNew_cluster() {
	client := redis.NewClusterClient(&redis.ClusterOptions{
		Addrs: []string{"10.0.0.1:6379", "10.0.0.2:6379", "10.0.0.3:6379"},
	})
	defer client.Close()
	sessions := redisstore.New(client)
	defer sessions.Close()
}

// A cache in front of the store makes its own writes through a view with an origin
// (Events.From), skips the events they send back, drops everything on a resync, and
// serves from memory only while the store vouches for its events.
func ExampleStore_EventsLive() {
	client := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: []string{"127.0.0.1:6379"}})
	defer client.Close()
	sessions := redisstore.New(client, redisstore.Config{Prefix: "myapp:"})
	defer sessions.Close()

	const origin = "process-1" // unique to this process
	unsubscribe, err := sessions.Subscribe(func(ev store.Event) {
		switch {
		case ev.Kind == store.EventResync:
			// drop every cached session
		case ev.Origin == origin:
			// the cache applied this write already
		default:
			// drop or reload the cached session ev.Hash
		}
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer unsubscribe()

	own := sessions.Capabilities().Events.From(origin)
	if err := own.Save(context.Background(), "session-id", store.Change{Set: map[string]string{"color": `"red"`}}, 30*time.Minute); err != nil {
		fmt.Println(err)
	}
	if sessions.EventsLive() {
		// serve reads from the cache
	} else {
		// load from Redis
	}
}
