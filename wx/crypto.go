package wx

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Decrypt is the package function Decrypt for the Client's AppID.
func (c *Client) Decrypt(sessionKey, encryptedData, iv string, maxAge time.Duration) ([]byte, error) {
	return Decrypt(c.appID, sessionKey, encryptedData, iv, maxAge)
}

// Decrypt decrypts encryptedData sent by a mini program (user info, share info, phone
// number, ...) and returns its JSON. sessionKey, encryptedData and iv are base64, as
// WeChat hands them out (padding may be missing). It refuses, with ErrDecrypt, keys and
// ivs that are not 16 bytes, ciphertext that is empty or not whole AES blocks, bad PKCS#7
// padding and plaintext that is not a JSON object; with ErrWatermark, data whose
// watermark.appid is not appID; and, when maxAge > 0, with ErrStale, data whose
// watermark.timestamp is more than maxAge from now, either way.
//
// The data's openId, if any, is only what the client sent: take the user's identity from
// Code2Session.
func Decrypt(appID, sessionKey, encryptedData, iv string, maxAge time.Duration) ([]byte, error) {
	key, err := decodeBase64(sessionKey)
	if err != nil || len(key) != aes.BlockSize {
		return nil, fmt.Errorf("%w: session key is not 16 bytes of base64", ErrDecrypt)
	}
	ivb, err := decodeBase64(iv)
	if err != nil || len(ivb) != aes.BlockSize {
		return nil, fmt.Errorf("%w: iv is not 16 bytes of base64", ErrDecrypt)
	}
	ct, err := decodeBase64(encryptedData)
	if err != nil {
		return nil, fmt.Errorf("%w: encryptedData is not base64", ErrDecrypt)
	}
	if len(ct) == 0 || len(ct)%aes.BlockSize != 0 {
		return nil, fmt.Errorf("%w: encryptedData is %d bytes, not a positive multiple of 16", ErrDecrypt, len(ct))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrDecrypt, err)
	}
	pt := make([]byte, len(ct))
	cipher.NewCBCDecrypter(block, ivb).CryptBlocks(pt, ct)

	// Bad padding and bad JSON get one message: both mean the wrong key (or tampering),
	// and telling them apart would help a padding-oracle attacker only.
	pt, ok := unpad(pt)
	var doc struct {
		Watermark json.RawMessage `json:"watermark"`
	}
	if !ok || json.Unmarshal(pt, &doc) != nil || len(pt) == 0 || pt[0] != '{' {
		return nil, fmt.Errorf("%w: wrong session key or corrupt data", ErrDecrypt)
	}
	var wm Watermark
	if len(doc.Watermark) == 0 || string(doc.Watermark) == "null" {
		return nil, fmt.Errorf("%w: no watermark", ErrWatermark)
	}
	if err := json.Unmarshal(doc.Watermark, &wm); err != nil {
		return nil, fmt.Errorf("%w: unreadable watermark: %v", ErrWatermark, err)
	}
	if wm.AppID != appID {
		return nil, fmt.Errorf("%w: appid %q, want %q", ErrWatermark, wm.AppID, appID)
	}
	if maxAge > 0 {
		at := time.Unix(wm.Timestamp, 0)
		if age := time.Since(at); age > maxAge || age < -maxAge {
			return nil, fmt.Errorf("%w: watermark time %s is %s from now, allowed %s",
				ErrStale, at.UTC().Format(time.RFC3339), age.Round(time.Second), maxAge)
		}
	}
	return pt, nil
}

// unpad strips PKCS#7 padding for 16-byte blocks, checking every pad byte in constant
// time.
func unpad(b []byte) ([]byte, bool) {
	if len(b) == 0 || len(b)%aes.BlockSize != 0 {
		return nil, false
	}
	n := int(b[len(b)-1])
	good := subtle.ConstantTimeLessOrEq(1, n) & subtle.ConstantTimeLessOrEq(n, aes.BlockSize)
	m := subtle.ConstantTimeSelect(good, n, 1) // keeps 16-m in range for the loop
	tail := b[len(b)-aes.BlockSize:]
	for i, c := range tail {
		inPad := subtle.ConstantTimeLessOrEq(aes.BlockSize-m, i) // i >= 16-m
		good &= subtle.ConstantTimeSelect(inPad, subtle.ConstantTimeByteEq(c, byte(n)), 1)
	}
	if good != 1 {
		return nil, false
	}
	return b[:len(b)-n], true
}

// decodeBase64 decodes standard base64 with or without its trailing padding: clients that
// pass the data through a query string may lose the "=".
func decodeBase64(s string) ([]byte, error) {
	return base64.RawStdEncoding.DecodeString(strings.TrimRight(s, "="))
}

// VerifySignature reports whether signature (hex) is sha1(rawData + sessionKey), the
// signature wx.getUserInfo returns with rawData. It compares in constant time.
func VerifySignature(rawData, sessionKey, signature string) bool {
	want, err := hex.DecodeString(signature)
	if err != nil || len(want) != sha1.Size {
		return false
	}
	h := sha1.New()
	h.Write([]byte(rawData))
	h.Write([]byte(sessionKey))
	return subtle.ConstantTimeCompare(h.Sum(nil), want) == 1
}

// HMACSignature returns the user-state signature of message for WeChat's
// sig_method=hmac_sha256: hex(hmac_sha256(key, message)), where the key is the base64
// session_key string itself, not the bytes it encodes. CheckSessionKey signs the empty
// message this way.
func HMACSignature(sessionKey string, message []byte) string {
	m := hmac.New(sha256.New, []byte(sessionKey))
	m.Write(message)
	return hex.EncodeToString(m.Sum(nil))
}
