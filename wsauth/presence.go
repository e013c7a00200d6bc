package wsauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"
)

// PresenceConfig turns on presence (Config.Presence): who is in each room, from any
// process, with Hub.Presence.
type PresenceConfig struct {
	// Events sends {"presence":{"join":"<openid>"}} to a room when a socket joins it,
	// and {"presence":{"leave":"<openid>"}} when one leaves it or closes, as messages
	// of the room (its members, the joining socket too, and Subscribe callbacks get
	// them; with Config.History they are kept and replayed like the others). None is
	// sent for the sockets closed by Shutdown or lost with a crashed process: their
	// members learn it from Hub.Presence.
	//
	// Optional. Default: false
	Events bool
}

// RoomPresence is who is in a room, across the processes that share the store.
type RoomPresence struct {
	Users   []string // the openids of the room's sockets, each once, sorted
	Sockets int      // the room's sockets
}

// Presence returns who is in room now, from every process sharing the store: the
// sockets that joined it and have not left or closed. A process that crashed stops
// counting within the store's bound (redisstore: Config.PresenceTTL, 10 s). It needs
// Config.Presence.
func (h *Hub) Presence(ctx context.Context, room string) (RoomPresence, error) {
	if err := checkRoom(room); err != nil {
		return RoomPresence{}, err
	}
	if h.presence == nil {
		return RoomPresence{}, errNoPresence
	}
	members, err := h.presence.PresenceList(ctx, room)
	if err != nil {
		return RoomPresence{}, fmt.Errorf("wsauth: presence: %w", err)
	}
	p := RoomPresence{Sockets: len(members)}
	for _, openid := range members {
		p.Users = append(p.Users, openid)
	}
	slices.Sort(p.Users)
	p.Users = slices.Compact(p.Users)
	return p, nil
}

var errNoPresence = errors.New("wsauth: presence needs Config.Presence")

// entered records the socket in room's presence, and tells the room when asked to.
func (h *Hub) entered(ctx context.Context, c *Conn, room string) {
	if h.presence == nil {
		return
	}
	openid := c.h.st.OpenID()
	if err := h.presence.PresenceAdd(ctx, room, c.id, openid); err != nil {
		return // a store outage: the socket is in the room, not listed (the store retries)
	}
	// A Leave or a close may have run meanwhile, its removal before this add.
	h.mu.Lock()
	still := !c.hubGone && slices.Contains(c.rooms, roomTopic(room))
	h.mu.Unlock()
	if !still {
		_ = h.presence.PresenceRemove(ctx, room, c.id)
		return
	}
	if h.presenceEvents {
		_ = h.ToRoom(ctx, room, presenceEvent("join", openid))
	}
}

// left takes the socket out of the presence of rooms, and tells them when asked to.
func (h *Hub) left(c *Conn, rooms []string) {
	if h.presence == nil || len(rooms) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	openid := c.h.st.OpenID()
	for _, room := range rooms {
		_ = h.presence.PresenceRemove(ctx, room, c.id) // a failure: the store retries
		if h.presenceEvents && !h.quiet.Load() {
			_ = h.ToRoom(ctx, room, presenceEvent("leave", openid))
		}
	}
}

func presenceEvent(what, openid string) []byte {
	b, _ := json.Marshal(map[string]map[string]string{"presence": {what: openid}})
	return b
}
