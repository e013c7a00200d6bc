package session

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
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

func fieldAEAD(id string) cipher.AEAD {
	mac := hmac.New(sha256.New, []byte(id))
	mac.Write([]byte("mpsession/session field key"))
	block, _ := aes.NewCipher(mac.Sum(nil)) // a 32-byte key never fails
	aead, _ := cipher.NewGCM(block)
	return aead
}

// Seal seals a field value of session id. The field's name is bound to the value, so
// one sealed field cannot stand in for another.
func Seal(id, name, plain string) string {
	aead := fieldAEAD(id)
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plain)+aead.Overhead())
	_, _ = rand.Read(nonce)
	return sealedPrefix + base64.RawStdEncoding.EncodeToString(aead.Seal(nonce, nonce, []byte(plain), []byte(name)))
}

var errSealed = errors.New("fibermp: a sealed field does not open with this session's key")

// Unseal opens what Seal sealed.
func Unseal(id, name, sealed string) (string, error) {
	b64, ok := strings.CutPrefix(sealed, sealedPrefix)
	if !ok {
		return "", errSealed
	}
	b, err := base64.RawStdEncoding.Strict().DecodeString(b64)
	aead := fieldAEAD(id)
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
