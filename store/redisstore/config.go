package redisstore

import (
	"time"

	"github.com/mpsession/mpsession/store"
)

// Config configures a Store.
type Config struct {
	// Prefix starts the name of every key the store writes and of its events channel,
	// so that several applications, or tests, can share one Redis. It must not
	// contain braces, which Redis Cluster reads as a hash tag (New panics).
	//
	// Optional. Default: "mpsession:"
	Prefix string

	// MaxRecordBytes limits the size of a session's fields as storekit.Size counts it.
	// A Create, a Save or an Incr of a new field that would make a record larger
	// returns store.ErrTooLarge and writes nothing.
	//
	// Optional. Default: store.DefaultMaxRecordBytes (64 KiB)
	MaxRecordBytes int

	// SubscribeTimeout bounds how long Subscribe, SubscribeWatched and Listen wait for
	// Redis to confirm a subscription, as none takes a context: against a Redis that
	// hangs they return an error after this long. It bounds Watch too, with its
	// context's deadline, whichever comes first. Zero or negative takes the default.
	//
	// Optional. Default: 5 * time.Second
	SubscribeTimeout time.Duration

	// PresenceTTL is how long the members a process added to rooms (store.Presence)
	// stay listed after the process stops renewing them (it crashed): the store renews
	// them every PresenceTTL/3 while it is open. Zero or negative takes the default.
	//
	// Optional. Default: 10 * time.Second
	PresenceTTL time.Duration
}

// ConfigDefault is the default config.
var ConfigDefault = Config{
	Prefix:           "mpsession:",
	MaxRecordBytes:   store.DefaultMaxRecordBytes,
	SubscribeTimeout: 5 * time.Second,
	PresenceTTL:      10 * time.Second,
}

// configDefault returns the first config with its zero fields filled from ConfigDefault.
func configDefault(config ...Config) Config {
	if len(config) < 1 {
		return ConfigDefault
	}
	cfg := config[0]
	if cfg.Prefix == "" {
		cfg.Prefix = ConfigDefault.Prefix
	}
	if cfg.MaxRecordBytes <= 0 {
		cfg.MaxRecordBytes = ConfigDefault.MaxRecordBytes
	}
	if cfg.SubscribeTimeout <= 0 {
		cfg.SubscribeTimeout = ConfigDefault.SubscribeTimeout
	}
	if cfg.PresenceTTL <= 0 {
		cfg.PresenceTTL = ConfigDefault.PresenceTTL
	}
	return cfg
}
