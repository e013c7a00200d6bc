package redisstore

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
)

// A ticket's value may be a credential (a session id), so it is sealed with AES-256-GCM
// under a key derived from the ticket. Redis holds the ticket's SHA-256 as the key name
// and this HMAC-derived key nowhere, so a dump cannot open the value.

func ticketAEAD(ticket string) (cipher.AEAD, error) {
	mac := hmac.New(sha256.New, []byte(ticket))
	mac.Write([]byte("mpsession redisstore ticket value"))
	block, err := aes.NewCipher(mac.Sum(nil))
	if err != nil {
		return nil, err
	}
	return cipher.NewGCMWithRandomNonce(block)
}

func sealTicket(ticket, value string) (string, error) {
	aead, err := ticketAEAD(ticket)
	if err != nil {
		return "", err
	}
	return string(aead.Seal(nil, nil, []byte(value), nil)), nil
}

func openTicket(ticket, sealed string) (string, error) {
	aead, err := ticketAEAD(ticket)
	if err != nil {
		return "", err
	}
	value, err := aead.Open(nil, nil, []byte(sealed), nil)
	if err != nil {
		return "", errors.New("ticket value does not open")
	}
	return string(value), nil
}
