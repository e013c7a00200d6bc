package memstore_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mpsession/mpsession/store"
	"github.com/mpsession/mpsession/store/memstore"
)

func Example() {
	sessions := memstore.New()
	defer sessions.Close()
	ctx := context.Background()

	// Fields hold JSON; the id is the secret the client keeps.
	err := sessions.Create(ctx, "session-id", store.Record{
		Fields: map[string]string{"nickname": `"Ann"`},
		Owner:  "o6_bmjrPTlm6_2sgVt7hMZOPfL2M",
	}, 30*time.Minute)
	if err != nil {
		panic(err)
	}

	// A request reads the session and keeps it alive for another 30 minutes.
	rec, err := sessions.Load(ctx, "session-id", 30*time.Minute)
	if err != nil {
		panic(err)
	}
	fmt.Println(rec.Fields["nickname"], rec.Owner)

	_, err = sessions.Load(ctx, "unknown-id", 0)
	fmt.Println(errors.Is(err, store.ErrNotFound))
	// Output:
	// "Ann" o6_bmjrPTlm6_2sgVt7hMZOPfL2M
	// true
}

func ExampleStore_Save() {
	sessions := memstore.New()
	defer sessions.Close()
	ctx := context.Background()
	if err := sessions.Create(ctx, "session-id", store.Record{Fields: map[string]string{"cart": "[]", "coupon": `"X1"`}}, time.Hour); err != nil {
		panic(err)
	}

	// Save writes only the fields it names, in one step.
	err := sessions.Save(ctx, "session-id", store.Change{
		Set:    map[string]string{"cart": `[{"sku":"A-17","qty":2}]`, "theme": `"dark"`},
		Delete: []string{"coupon"},
	}, time.Hour)
	if err != nil {
		panic(err)
	}
	rec, err := sessions.Load(ctx, "session-id", 0)
	if err != nil {
		panic(err)
	}
	fmt.Println(rec.Fields)

	// Save never brings a session back.
	err = sessions.Save(ctx, "deleted-id", store.Change{Set: map[string]string{"a": "1"}}, time.Hour)
	fmt.Println(err)
	// Output:
	// map[cart:[{"sku":"A-17","qty":2}] theme:"dark"]
	// store: not found
}

func ExampleStore_Incr() {
	sessions := memstore.New()
	defer sessions.Close()
	ctx := context.Background()
	if err := sessions.Create(ctx, "session-id", store.Record{}, time.Hour); err != nil {
		panic(err)
	}

	// A missing field counts as 0; concurrent increments are exact.
	for _, delta := range []int64{10, 5, -3} {
		score, err := sessions.Incr(ctx, "session-id", "score", delta)
		if err != nil {
			panic(err)
		}
		fmt.Println(score)
	}
	// Output:
	// 10
	// 15
	// 12
}

func ExampleStore_Subscribe() {
	sessions := memstore.New()
	defer sessions.Close()
	ctx := context.Background()
	if err := sessions.Create(ctx, "session-id", store.Record{}, time.Hour); err != nil {
		panic(err)
	}

	events := make(chan store.Event, 16)
	unsubscribe, err := sessions.Subscribe(func(e store.Event) {
		events <- e // must not block: the channel has room
	})
	if err != nil {
		panic(err)
	}
	defer unsubscribe()

	if _, err := sessions.Incr(ctx, "session-id", "score", 1); err != nil {
		panic(err)
	}
	if err := sessions.Delete(ctx, "session-id"); err != nil {
		panic(err)
	}
	for range 2 {
		e := <-events
		fmt.Println(e.Kind, e.Hash == store.Hash("session-id"), e.Fields)
	}
	// Output:
	// changed true [score]
	// deleted true []
}
