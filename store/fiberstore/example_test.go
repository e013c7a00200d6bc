package fiberstore_test

import (
	"context"
	"fmt"
	"time"

	"github.com/gofiber/storage/memory/v2"

	"github.com/mpsession/mpsession/store"
	"github.com/mpsession/mpsession/store/fiberstore"
)

func Example() {
	storage := memory.New() // or mysql.New(...), postgres.New(...): any gofiber/storage driver
	defer storage.Close()   // the store never closes it

	st := fiberstore.New(storage, fiberstore.Config{Prefix: "app:"})
	defer st.Close()

	ctx := context.Background()
	err := st.Create(ctx, "session-id", store.Record{
		Fields: map[string]string{"score": "0"},
		Owner:  "openid-of-ann",
	}, 30*time.Minute)
	if err != nil {
		panic(err)
	}
	score, _ := st.Incr(ctx, "session-id", "score", 5)
	rec, _ := st.Load(ctx, "session-id", 30*time.Minute)
	fmt.Println(score, rec.Owner, rec.Fields["score"])
	// Output: 5 openid-of-ann 5
}
