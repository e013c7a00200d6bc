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
