package session

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
)

// Secrets at rest. A store dump must give its reader nothing to act on, so the fields
// that would (the WeChat session_key, which decrypts the user's data and signs rawData;
// the user info; the unionid) are sealed with AES-256-GCM under a key derived from the
// session id, which the store never sees: it keys records by SHA-256 of the id. The
// Wafer skey is kept as its SHA-256, which is all a check needs.

// sealedPrefix marks a sealed value (and its format, should it change).
const sealedPrefix = "v1:"

// Sealed reports whether a reserved field is kept sealed.
func Sealed(name string) bool {
	return name == FieldSessionKey || name == FieldUserInfo || name == FieldUnionID
}

func sealAEAD(secret string) cipher.AEAD {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte("mpsession seal key"))
	block, _ := aes.NewCipher(mac.Sum(nil)) // a 32-byte key never fails
	aead, _ := cipher.NewGCM(block)
	return aead
}

// Seal seals plain under a key derived from secret, a random value the store never
// sees: a session id (for the session's fields), a ticket (for the credential it
// holds). name says what the value is and is bound to it, so one sealed value cannot
// stand in for another.
func Seal(secret, name, plain string) string {
	aead := sealAEAD(secret)
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plain)+aead.Overhead())
	_, _ = rand.Read(nonce)
	return sealedPrefix + base64.RawStdEncoding.EncodeToString(aead.Seal(nonce, nonce, []byte(plain), []byte(name)))
}

var errSealed = errors.New("mpsession: a sealed value does not open with this key")

// Unseal opens what Seal sealed.
func Unseal(secret, name, sealed string) (string, error) {
	b64, ok := strings.CutPrefix(sealed, sealedPrefix)
	if !ok {
		return "", errSealed
	}
	b, err := base64.RawStdEncoding.Strict().DecodeString(b64)
	aead := sealAEAD(secret)
	if err != nil || len(b) < aead.NonceSize() {
		return "", errSealed
	}
	plain, err := aead.Open(nil, b[:aead.NonceSize()], b[aead.NonceSize():], []byte(name))
	if err != nil {
		return "", errSealed
	}
	return string(plain), nil
}

// HashSkey is how a Wafer skey is kept in the store.
func HashSkey(skey string) string {
	sum := sha256.Sum256([]byte(skey))
	return hex.EncodeToString(sum[:])
}

// SkeyMatches reports, in constant time, whether skey is the one stored as HashSkey.
func SkeyMatches(stored, skey string) bool {
	sum := sha256.Sum256([]byte(skey))
	var h [2 * sha256.Size]byte
	hex.Encode(h[:], sum[:])
	return subtle.ConstantTimeCompare(h[:], []byte(stored)) == 1
}
