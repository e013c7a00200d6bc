package redisstore

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"
)

// nodeCounts are what a Cluster node has counted of pub/sub: the PUBLISH and SPUBLISH
// commands it ran, and the messages it sent other nodes over the cluster bus for them.
type nodeCounts struct {
	publish, spublish    int64 // commands run
	busPublish, busShard int64 // cluster bus messages sent
}

// clusterCounts returns the counts of every master, by address.
func clusterCounts(t *testing.T, cc *redis.ClusterClient) map[string]nodeCounts {
	t.Helper()
	var mu sync.Mutex
	counts := map[string]nodeCounts{}
	err := cc.ForEachMaster(t.Context(), func(ctx context.Context, node *redis.Client) error {
		stats, err := node.Info(ctx, "commandstats").Result()
		if err != nil {
			return err
		}
		info, err := node.ClusterInfo(ctx).Result()
		if err != nil {
			return err
		}
		n := nodeCounts{
			publish:    infoInt(stats, "cmdstat_publish:calls="),
			spublish:   infoInt(stats, "cmdstat_spublish:calls="),
			busPublish: infoInt(info, "cluster_stats_messages_publish_sent:"),
			busShard:   infoInt(info, "cluster_stats_messages_publishshard_sent:"),
		}
		mu.Lock()
		counts[node.Options().Addr] = n
		mu.Unlock()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return counts
}

// infoInt returns the number after key in an INFO or CLUSTER INFO reply, 0 when the
// key is missing (a command never run).
func infoInt(reply, key string) int64 {
	i := strings.Index(reply, key)
	if i < 0 {
		return 0
	}
	rest := reply[i+len(key):]
	end := strings.IndexAny(rest, ",\r\n")
	if end < 0 {
		end = len(rest)
	}
	n, _ := strconv.ParseInt(rest[:end], 10, 64)
	return n
}

// TestMessageShardedCluster: on a Cluster, a message is one SPUBLISH on the node that
// owns its channel, and crosses no other node: no cluster bus message is sent for it,
// where a plain PUBLISH goes to every node. The listener is another process's store.
// It counts what the whole Cluster runs, so it does not run in parallel.
func TestMessageShardedCluster(t *testing.T) {
	cc := newClusterClient(t)
	pub := newStore(t, cc, Config{})
	sub := newStore(t, newClusterClient(t), Config{Prefix: pub.prefix})
	const topic = "r:sharded"
	in, _ := listenTo(t, sub, topic)
	ch := pub.msgChannel(topic)
	owner, err := cc.MasterForKey(t.Context(), ch)
	if err != nil {
		t.Fatal(err)
	}
	ownerAddr := owner.Options().Addr

	before := clusterCounts(t, cc)
	if len(before) != 3 {
		t.Fatalf("want 3 masters; got %d", len(before))
	}
	const n = 50
	for i := range n {
		if err := pub.Publish(t.Context(), topic, []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		if got := recv(t, in, "listener"); got != fmt.Sprint(i) {
			t.Fatalf("want %d; got %q", i, got)
		}
	}
	after := clusterCounts(t, cc)
	for addr, b := range before {
		a := after[addr]
		wantSpublish := int64(0)
		if addr == ownerAddr {
			wantSpublish = n
		}
		if got := a.spublish - b.spublish; got != wantSpublish {
			t.Errorf("node %s (owner %v): want %d SPUBLISH; got %d", addr, addr == ownerAddr, wantSpublish, got)
		}
		if got := a.publish - b.publish; got != 0 {
			t.Errorf("node %s: want no PUBLISH; got %d", addr, got)
		}
		if bus := (a.busPublish - b.busPublish) + (a.busShard - b.busShard); bus != 0 {
			t.Errorf("node %s: want no cluster bus message (no replicas); got %d", addr, bus)
		}
	}

	// The control: a plain PUBLISH of the same channel goes to every other node.
	if err := cc.Publish(t.Context(), ch, "plain").Err(); err != nil {
		t.Fatal(err)
	}
	control := clusterCounts(t, cc)
	var bus int64
	for addr, a := range after {
		bus += control[addr].busPublish - a.busPublish
	}
	if bus < 2 {
		t.Errorf("plain PUBLISH: want a cluster bus message to each of the 2 other nodes; got %d", bus)
	}
	t.Logf("%d messages: %d SPUBLISH on the owner %s, no cluster bus message; one plain PUBLISH: %d bus messages",
		n, after[ownerAddr].spublish-before[ownerAddr].spublish, ownerAddr, bus)
}
