package wxtest

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"maps"
	"strings"
	"time"
)

// User is a WeChat user of the mini program.
type User struct {
	// OpenID identifies the user. Required by AddUser.
	OpenID string
	// UnionID is sent by jscode2session when not empty.
	UnionID string
	// SessionKey is the user's current session_key (base64 of 16 bytes). AddUser makes
	// one if empty.
	SessionKey string
	// PhoneNumber is the number without country code, for getuserphonenumber. AddUser
	// makes one if empty.
	PhoneNumber string
	// CountryCode is the country calling code. AddUser sets "86" if empty.
	CountryCode string
	// Blocked makes jscode2session refuse the user's codes with 40226.
	Blocked bool
}

// issuedCode is a login or phone code.
type issuedCode struct {
	openID string
	issued int64 // server time, Unix nanoseconds
	used   bool
}

// expired reports whether the code can no longer be exchanged at now.
func (c *issuedCode) expired(now time.Time) bool {
	return now.Sub(time.Unix(0, c.issued)) >= CodeLifetime
}

// codeBook holds the login or phone codes handed out. Codes are dropped once expired, so
// that a long-running development server does not grow without bound: an expired code
// answers 40029 whether it was dropped or not, as an unknown one does. A used code is
// kept until it expires, to answer 40163.
type codeBook struct {
	byCode map[string]*issuedCode
	order  []string // oldest first; the server's clock never goes back
}

// get returns the code, if it is still held.
func (b *codeBook) get(code string) (*issuedCode, bool) {
	c, ok := b.byCode[code]
	return c, ok
}

// add makes a new code for openID at now, first dropping the codes expired by then, and
// returns it.
func (b *codeBook) add(openID string, now time.Time) string {
	for len(b.order) > 0 && b.byCode[b.order[0]].expired(now) {
		delete(b.byCode, b.order[0])
		b.order = b.order[1:]
	}
	code := randomString(32)
	b.byCode[code] = &issuedCode{openID: openID, issued: now.UnixNano()}
	b.order = append(b.order, code)
	return code
}

// AddUser adds u, or replaces the user with the same OpenID, filling SessionKey,
// PhoneNumber and CountryCode if empty, and returns a copy of what it stored. It panics
// if u.OpenID is empty.
func (s *Server) AddUser(u User) *User {
	if u.OpenID == "" {
		panic("wxtest: AddUser: empty OpenID")
	}
	u.OpenID = strings.Clone(u.OpenID)
	v := filled(u)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.users[u.OpenID] = v
	c := *v
	return &c
}

// filled returns u with its empty SessionKey, PhoneNumber and CountryCode made up.
func filled(u User) *User {
	if u.SessionKey == "" {
		u.SessionKey = newSessionKey()
	}
	if u.PhoneNumber == "" {
		h := fnv.New32a()
		h.Write([]byte(u.OpenID))
		u.PhoneNumber = fmt.Sprintf("138%08d", h.Sum32()%100000000)
	}
	if u.CountryCode == "" {
		u.CountryCode = "86"
	}
	return &u
}

// User returns a copy of the user with openID, or nil if there is none.
func (s *Server) User(openID string) *User {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.users[openID]
	if !ok {
		return nil
	}
	c := *u
	return &c
}

// user returns the user with openID, adding one if unknown; the caller holds mu.
func (s *Server) user(openID string) *User {
	u, ok := s.users[openID]
	if !ok {
		openID = strings.Clone(openID)
		u = filled(User{OpenID: openID})
		s.users[openID] = u
	}
	return u
}

// mustUser returns the user with openID or panics; the caller holds mu.
func (s *Server) mustUser(op, openID string) *User {
	u, ok := s.users[openID]
	if !ok {
		panic(fmt.Sprintf("wxtest: %s: unknown user %q", op, openID))
	}
	return u
}

// NewCode returns a new login code for openID, as wx.login would give the user's client,
// adding the user if unknown. The code can be exchanged once, within CodeLifetime:
// jscode2session answers 40163 for it once used, and 40029 once expired, used or not.
func (s *Server) NewCode(openID string) string {
	// Kept as a map key and in the code: it must not share memory with a request
	// buffer (Fiber's adaptor hands handlers such strings).
	openID = strings.Clone(openID)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.user(openID)
	return s.codes.add(openID, s.now())
}

// NewPhoneCode returns a new code for getuserphonenumber, as a getPhoneNumber button
// would give the user's client, adding the user if unknown. It is single use and lives
// CodeLifetime.
func (s *Server) NewPhoneCode(openID string) string {
	openID = strings.Clone(openID)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.user(openID)
	return s.phoneCodes.add(openID, s.now())
}

// RotateSessionKey gives the user a new session_key, as WeChat does from time to time
// on wx.login, and returns it. The old key no longer passes checksession. It panics if
// the user is unknown.
func (s *Server) RotateSessionKey(openID string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.mustUser("RotateSessionKey", openID)
	u.SessionKey = newSessionKey()
	return u.SessionKey
}

// EncryptUserInfo returns userInfo as wx.getUserProfile would hand it to the client:
// encrypted with the user's current session_key, with openId (and unionId, if the user
// has one) added unless present, and a watermark holding the AppID and the server's
// time. It panics if the user is unknown.
func (s *Server) EncryptUserInfo(openID string, userInfo map[string]any) (encryptedData, iv string) {
	s.mu.Lock()
	u := s.mustUser("EncryptUserInfo", openID)
	key, union, now := u.SessionKey, u.UnionID, s.now()
	s.mu.Unlock()

	doc := maps.Clone(userInfo)
	if doc == nil {
		doc = make(map[string]any)
	}
	if _, ok := doc["openId"]; !ok {
		doc["openId"] = openID
	}
	if _, ok := doc["unionId"]; !ok && union != "" {
		doc["unionId"] = union
	}
	doc["watermark"] = map[string]any{"appid": s.appID, "timestamp": now.Unix()}
	plain, err := json.Marshal(doc)
	if err != nil {
		panic(fmt.Sprintf("wxtest: EncryptUserInfo: %v", err))
	}
	return Encrypt(key, plain)
}

// SignRawData returns the signature wx.getUserInfo sends with rawData:
// hex(sha1(rawData + session_key)) with the user's current session_key. It panics if the
// user is unknown.
func (s *Server) SignRawData(openID, rawData string) string {
	s.mu.Lock()
	key := s.mustUser("SignRawData", openID).SessionKey
	s.mu.Unlock()
	sum := sha1.Sum([]byte(rawData + key))
	return hex.EncodeToString(sum[:])
}

// Encrypt encrypts plaintext as WeChat encrypts open data: AES-128-CBC with PKCS#7
// padding, key = base64-decoded sessionKey, a random iv; both results are base64. It
// panics if sessionKey is not base64 of 16 bytes.
func Encrypt(sessionKey string, plaintext []byte) (encryptedData, iv string) {
	key, err := base64.StdEncoding.DecodeString(sessionKey)
	if err != nil || len(key) != aes.BlockSize {
		panic("wxtest: Encrypt: session key is not base64 of 16 bytes")
	}
	block, _ := aes.NewCipher(key)
	n := aes.BlockSize - len(plaintext)%aes.BlockSize
	buf := make([]byte, len(plaintext)+n)
	copy(buf, plaintext)
	for i := len(plaintext); i < len(buf); i++ {
		buf[i] = byte(n)
	}
	ivb := make([]byte, aes.BlockSize)
	rand.Read(ivb)
	cipher.NewCBCEncrypter(block, ivb).CryptBlocks(buf, buf)
	return base64.StdEncoding.EncodeToString(buf), base64.StdEncoding.EncodeToString(ivb)
}

func newSessionKey() string {
	b := make([]byte, 16)
	rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// randomString returns n random characters from alphabet.
func randomString(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}
