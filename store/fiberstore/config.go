package fiberstore

import "github.com/mpsession/mpsession/store"

// Config defines the config for the store.
type Config struct {
	// Prefix starts every key the store writes, so that several stores, or other users of
	// the backend, can share it. The store adds 45 bytes to it. The MySQL and Postgres
	// drivers keep keys in a VARCHAR(64) column, so with them keep Prefix at 19 bytes or
	// fewer.
	//
	// Optional. Default: "mpsession:"
	Prefix string

	// MaxRecordBytes limits the size of a session's fields (see storekit.Size). A write that
	// would exceed it returns store.ErrTooLarge and writes nothing. The MySQL driver keeps
	// values in a BLOB column (65,535 bytes), which the default limit plus the record's
	// framing can exceed: alter the column to MEDIUMBLOB or lower this limit.
	//
	// Optional. Default: store.DefaultMaxRecordBytes
	MaxRecordBytes int
}

// ConfigDefault is the default config.
var ConfigDefault = Config{
	Prefix:         "mpsession:",
	MaxRecordBytes: store.DefaultMaxRecordBytes,
}

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
	return cfg
}
