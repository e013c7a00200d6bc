package store

import "context"

// Presence is implemented by stores that keep who is in each room, as seen by every
// process sharing them: redisstore in Redis, memstore in its process. wsauth's Hub
// uses it when its Config.Presence is set.
//
// A member is added by the process that holds it and removed by that process; when the
// process stops without removing its members (a crash, SIGKILL), they stop being listed
// within PresenceTTL, as the process stops renewing them.
type Presence interface {
	// PresenceAdd records member (unique in the room: a socket's id) in room, with
	// value (the socket's openid). It is renewed by the store while the store is open
	// (redisstore: every PresenceTTL/3), until PresenceRemove.
	PresenceAdd(ctx context.Context, room, member, value string) error

	// PresenceRemove takes member out of room. Removing one that is not there does
	// nothing.
	PresenceRemove(ctx context.Context, room, member string) error

	// PresenceList returns room's members (member to value) added by every process
	// that is still running. A room nobody is in has none. It may delete the members of
	// processes that stopped.
	PresenceList(ctx context.Context, room string) (map[string]string, error)
}
