package wx_test

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mpsession/mpsession/wx"
	"github.com/mpsession/mpsession/wx/wxtest"
)

func TestDecryptOfficialVector(t *testing.T) {
	v := loadVectors(t).Decrypt
	got, err := wx.Decrypt(v.AppID, v.SessionKey, v.EncryptedData, v.IV, 0)
	if err != nil {
		t.Fatalf("Decrypt: %v", err)
	}
	var gotDoc, wantDoc any
	if err := json.Unmarshal(got, &gotDoc); err != nil {
		t.Fatalf("plaintext is not JSON: %v", err)
	}
	if err := json.Unmarshal(v.Plaintext, &wantDoc); err != nil {
		t.Fatalf("vector plaintext: %v", err)
	}
	if !reflect.DeepEqual(gotDoc, wantDoc) {
		t.Errorf("want %s; got %s", v.Plaintext, got)
	}

	t.Run("client method", func(t *testing.T) {
		c, err := wx.New(wx.Config{AppID: v.AppID, AppSecret: testSecret})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Decrypt(v.SessionKey, v.EncryptedData, v.IV, 0); err != nil {
			t.Errorf("want nil; got %v", err)
		}
	})
	t.Run("other appid", func(t *testing.T) {
		_, err := wx.Decrypt("wx0000000000000000", v.SessionKey, v.EncryptedData, v.IV, 0)
		if !errors.Is(err, wx.ErrWatermark) {
			t.Errorf("want ErrWatermark; got %v", err)
		}
	})
	t.Run("watermark too old", func(t *testing.T) {
		// The vector was made in 2016.
		_, err := wx.Decrypt(v.AppID, v.SessionKey, v.EncryptedData, v.IV, 24*time.Hour)
		if !errors.Is(err, wx.ErrStale) {
			t.Errorf("want ErrStale; got %v", err)
		}
	})
	t.Run("unpadded base64", func(t *testing.T) {
		strip := func(s string) string { return strings.TrimRight(s, "=") }
		if _, err := wx.Decrypt(v.AppID, strip(v.SessionKey), strip(v.EncryptedData), strip(v.IV), 0); err != nil {
			t.Errorf("want nil; got %v", err)
		}
	})
}

func TestVerifySignatureOfficialVector(t *testing.T) {
	v := loadVectors(t).RawDataSignature
	tests := []struct {
		name                           string
		rawData, sessionKey, signature string
		want                           bool
	}{
		{"official", v.RawData, v.SessionKey, v.Signature, true},
		{"upper-case hex", v.RawData, v.SessionKey, strings.ToUpper(v.Signature), true},
		{"raw data changed", v.RawData + " ", v.SessionKey, v.Signature, false},
		{"other session key", v.RawData, "tiihtNczf5v6AKRyjwEUhQ==", v.Signature, false},
		{"signature one digit off", v.RawData, v.SessionKey, v.Signature[:39] + "d", false},
		{"signature truncated", v.RawData, v.SessionKey, v.Signature[:38], false},
		{"signature not hex", v.RawData, v.SessionKey, strings.Repeat("z", 40), false},
		{"empty signature", v.RawData, v.SessionKey, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := wx.VerifySignature(tt.rawData, tt.sessionKey, tt.signature); got != tt.want {
				t.Errorf("want %v; got %v", tt.want, got)
			}
		})
	}
}

func TestHMACSignatureOfficialVector(t *testing.T) {
	v := loadVectors(t).HMACSHA256
	if got := wx.HMACSignature(v.Key, []byte(v.Message)); got != v.Signature {
		t.Errorf("want %q; got %q", v.Signature, got)
	}
}

// encryptRaw encrypts already padded (or deliberately mis-padded) data with key and iv.
func encryptRaw(t *testing.T, sessionKey, iv string, padded []byte) string {
	t.Helper()
	key, _ := base64.StdEncoding.DecodeString(sessionKey)
	ivb, _ := base64.StdEncoding.DecodeString(iv)
	block, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]byte, len(padded))
	cipher.NewCBCEncrypter(block, ivb).CryptBlocks(out, padded)
	return base64.StdEncoding.EncodeToString(out)
}

func TestDecryptRejects(t *testing.T) {
	v := loadVectors(t).Decrypt
	key, iv := v.SessionKey, v.IV
	// A JSON object with a good watermark, spaced to whole blocks, for hand-made padding.
	body := `{"watermark":{"appid":"` + v.AppID + `"}`
	body += strings.Repeat(" ", 15-len(body)%16) + "}"
	padWith := func(pad []byte) string { return encryptRaw(t, key, iv, append([]byte(body), pad...)) }
	full := make([]byte, 16)
	for i := range full {
		full[i] = 16
	}
	if len(body)%16 != 0 {
		t.Fatalf("test body is %d bytes; want a multiple of 16", len(body))
	}

	tests := []struct {
		name                 string
		sessionKey, data, iv string
		want                 error
	}{
		{"good hand-made padding", key, padWith(full), iv, nil},
		{"session key not base64", "not base64!", v.EncryptedData, iv, wx.ErrDecrypt},
		{"session key 15 bytes", base64.StdEncoding.EncodeToString(make([]byte, 15)), v.EncryptedData, iv, wx.ErrDecrypt},
		{"session key 32 bytes", base64.StdEncoding.EncodeToString(make([]byte, 32)), v.EncryptedData, iv, wx.ErrDecrypt},
		{"iv 8 bytes", key, v.EncryptedData, base64.StdEncoding.EncodeToString(make([]byte, 8)), wx.ErrDecrypt},
		{"iv empty", key, v.EncryptedData, "", wx.ErrDecrypt},
		{"data empty", key, "", iv, wx.ErrDecrypt},
		{"data not base64", key, "%%%%", iv, wx.ErrDecrypt},
		{"data 17 bytes", key, base64.StdEncoding.EncodeToString(make([]byte, 17)), iv, wx.ErrDecrypt},
		{"data one block short", key, base64.StdEncoding.EncodeToString(mustB64(t, v.EncryptedData)[16:]), iv, wx.ErrDecrypt},
		{"pad byte 0", key, encryptRaw(t, key, iv, append([]byte(body[:len(body)-1]), 0)), iv, wx.ErrDecrypt},
		{"pad byte 17", key, padWith(append(make([]byte, 15), 17)), iv, wx.ErrDecrypt},
		{"pad bytes differ", key, padWith([]byte{16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 15, 16}), iv, wx.ErrDecrypt},
		{"no padding at all", key, encryptRaw(t, key, iv, []byte(body)), iv, wx.ErrDecrypt},
		{"wrong session key", "HyVFkGl5F5OQWJZZaNzBBg==", v.EncryptedData, iv, wx.ErrDecrypt},
		{"plaintext not an object", key, encrypt(t, key, `["watermark"]`), iv, wx.ErrDecrypt},
		{"no watermark", key, encrypt(t, key, `{"openId":"x"}`), iv, wx.ErrWatermark},
		{"null watermark", key, encrypt(t, key, `{"watermark":null}`), iv, wx.ErrWatermark},
		{"watermark a string", key, encrypt(t, key, `{"watermark":"wx4f4bc4dec97d474b"}`), iv, wx.ErrWatermark},
		{"watermark other appid", key, encrypt(t, key, `{"watermark":{"appid":"wx1111111111111111"}}`), iv, wx.ErrWatermark},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := wx.Decrypt(v.AppID, tt.sessionKey, tt.data, tt.iv, 0)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Errorf("want %v; got %v", tt.want, err)
			}
			if err != nil && !strings.HasPrefix(err.Error(), "wx: ") {
				t.Errorf("want a message starting with %q; got %q", "wx: ", err)
			}
		})
	}
}

// encrypt encrypts plaintext with key and the vector's iv, padded properly.
func encrypt(t *testing.T, key, plaintext string) string {
	t.Helper()
	n := 16 - len(plaintext)%16
	padded := []byte(plaintext)
	for range n {
		padded = append(padded, byte(n))
	}
	return encryptRaw(t, key, loadVectors(t).Decrypt.IV, padded)
}

func mustB64(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDecryptWxtestData(t *testing.T) {
	fake := newFake(t)
	c := newClient(t, fake, wx.Config{})
	fake.AddUser(wxtest.User{OpenID: "o-alice", UnionID: "u-alice"})
	key := fake.User("o-alice").SessionKey

	t.Run("fresh", func(t *testing.T) {
		data, iv := fake.EncryptUserInfo("o-alice", map[string]any{"nickName": "Alice", "gender": 2})
		got, err := c.Decrypt(key, data, iv, 5*time.Minute)
		if err != nil {
			t.Fatalf("Decrypt: %v", err)
		}
		var doc struct {
			OpenID, UnionID, NickName string
			Watermark                 wx.Watermark
		}
		if err := json.Unmarshal(got, &doc); err != nil {
			t.Fatal(err)
		}
		if doc.OpenID != "o-alice" || doc.UnionID != "u-alice" || doc.NickName != "Alice" || doc.Watermark.AppID != testAppID {
			t.Errorf("want o-alice/u-alice/Alice/%s; got %+v", testAppID, doc)
		}
	})
	t.Run("older than maxAge", func(t *testing.T) {
		fake.Advance(-10 * time.Minute) // data made 10 minutes ago
		data, iv := fake.EncryptUserInfo("o-alice", map[string]any{"nickName": "Alice"})
		fake.Advance(10 * time.Minute)
		if _, err := c.Decrypt(key, data, iv, 5*time.Minute); !errors.Is(err, wx.ErrStale) {
			t.Errorf("want ErrStale; got %v", err)
		}
		if _, err := c.Decrypt(key, data, iv, 0); err != nil {
			t.Errorf("maxAge 0: want nil; got %v", err)
		}
	})
	t.Run("from the future", func(t *testing.T) {
		fake.Advance(time.Hour)
		data, iv := fake.EncryptUserInfo("o-alice", nil)
		fake.Advance(-time.Hour)
		if _, err := c.Decrypt(key, data, iv, 5*time.Minute); !errors.Is(err, wx.ErrStale) {
			t.Errorf("want ErrStale; got %v", err)
		}
	})
	t.Run("session key rotated since", func(t *testing.T) {
		data, iv := fake.EncryptUserInfo("o-alice", nil)
		fake.RotateSessionKey("o-alice")
		newKey := fake.User("o-alice").SessionKey
		if _, err := c.Decrypt(newKey, data, iv, 0); !errors.Is(err, wx.ErrDecrypt) {
			t.Errorf("want ErrDecrypt; got %v", err)
		}
	})
	t.Run("rawData signature", func(t *testing.T) {
		raw := `{"nickName":"Alice","gender":2}`
		sig := fake.SignRawData("o-alice", raw)
		key := fake.User("o-alice").SessionKey
		if !wx.VerifySignature(raw, key, sig) {
			t.Errorf("want true; got false")
		}
		if wx.VerifySignature(raw+" ", key, sig) {
			t.Errorf("changed rawData: want false; got true")
		}
	})
}
