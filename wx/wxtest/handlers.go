package wxtest

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"time"
)

// messages are WeChat's errmsg texts for the codes the fake answers with.
var messages = map[int]string{
	-1:    "system error",
	40001: "invalid credential, access_token is invalid or not latest",
	40002: "invalid grant_type",
	40013: "invalid appid",
	40014: "invalid access_token",
	40029: "invalid code",
	40125: "invalid appsecret",
	40163: "code been used",
	40226: "code blocked",
	41001: "access_token missing",
	41008: "missing code",
	42001: "access_token expired",
	43001: "require GET method",
	43002: "require POST method",
	45009: "reach max api daily quota limit",
	45011: "api minute-quota reach limit  mustslower  retry next minute",
	47001: "data format error",
	87009: "invalid signature",
}

// issuedToken is an access token and its state.
type issuedToken struct {
	value   string
	expires time.Time
	revoked time.Time // zero while not replaced; else when it stops working
}

// check returns 0 if t works at now, else the errcode WeChat answers for it.
func (t *issuedToken) check(now time.Time) int {
	switch {
	case !now.Before(t.expires):
		return 42001
	case !t.revoked.IsZero() && !now.Before(t.revoked):
		return 40001
	}
	return 0
}

// endpoint wraps an endpoint's handler with call counting and fault injection.
func (s *Server) endpoint(name string, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.calls[name]++
		f := s.takeFault(name)
		s.mu.Unlock()
		if f != nil && f.apply(w, r) {
			return
		}
		h(w, r)
	}
}

func (s *Server) code2Session(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		writeError(w, 43001, "")
		return
	}
	q := r.URL.Query()
	if code := s.checkApp(q.Get("appid"), q.Get("secret")); code != 0 {
		writeError(w, code, "")
		return
	}
	if q.Get("grant_type") != "authorization_code" {
		writeError(w, 40002, "")
		return
	}
	jsCode := q.Get("js_code")
	if jsCode == "" {
		writeError(w, 41008, "")
		return
	}

	s.mu.Lock()
	c, ok := s.codes.get(jsCode)
	var errcode int
	var reply map[string]string
	switch {
	case !ok || c.expired(s.now()):
		errcode = 40029
	case c.used:
		errcode = 40163
	default:
		c.used = true
		u := s.users[c.openID]
		if u.Blocked {
			errcode = 40226
			break
		}
		reply = map[string]string{"session_key": u.SessionKey, "openid": u.OpenID}
		if u.UnionID != "" {
			reply["unionid"] = u.UnionID
		}
	}
	s.mu.Unlock()

	if errcode != 0 {
		writeError(w, errcode, "")
		return
	}
	// jscode2session answers with text/plain; clients must not rely on the type.
	writeJSONAs(w, "text/plain", reply)
}

// checkApp returns the errcode for a wrong appid or secret, or 0.
func (s *Server) checkApp(appID, secret string) int {
	switch {
	case appID != s.appID:
		return 40013
	case secret != s.secret:
		return 40125
	}
	return 0
}

func (s *Server) stableToken(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		writeError(w, 43002, "")
		return
	}
	var in struct {
		GrantType    string `json:"grant_type"`
		AppID        string `json:"appid"`
		Secret       string `json:"secret"`
		ForceRefresh bool   `json:"force_refresh"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&in); err != nil {
		writeError(w, 47001, "")
		return
	}
	s.mu.Lock()
	if in.ForceRefresh {
		s.forceCalls++
	}
	s.mu.Unlock()
	if in.GrantType != "client_credential" {
		writeError(w, 40002, "")
		return
	}
	if code := s.checkApp(in.AppID, in.Secret); code != 0 {
		writeError(w, code, "")
		return
	}

	s.mu.Lock()
	now := s.now()
	var errcode int
	var tok *issuedToken
	if in.ForceRefresh {
		errcode = s.allowForce(now)
		if errcode == 0 {
			s.forced = append(s.forced, now)
			if s.stable != nil {
				s.stable.revoked = now
			}
			s.stable = s.issue(now)
		}
	} else if cur := s.stable; cur != nil && cur.check(now) == 0 && cur.expires.Sub(now) > TokenOverlap {
		tok = cur
	} else {
		// A token in its last TokenOverlap is renewed; it keeps working until it expires.
		s.stable = s.issue(now)
	}
	if tok == nil {
		tok = s.stable
	}
	s.mu.Unlock()

	if errcode != 0 {
		writeError(w, errcode, "")
		return
	}
	writeToken(w, tok, now)
}

// allowForce returns the errcode for a force refresh that breaks the limits, or 0; the
// caller holds mu.
func (s *Server) allowForce(now time.Time) int {
	if n := len(s.forced); n > 0 && now.Sub(s.forced[n-1]) < ForceRefreshInterval {
		return 45011
	}
	recent := 0
	for _, t := range s.forced {
		if now.Sub(t) < 24*time.Hour {
			recent++
		}
	}
	if recent >= ForceRefreshPerDay {
		return 45009
	}
	return 0
}

func (s *Server) classicToken(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		writeError(w, 43001, "")
		return
	}
	q := r.URL.Query()
	if q.Get("grant_type") != "client_credential" {
		writeError(w, 40002, "")
		return
	}
	if code := s.checkApp(q.Get("appid"), q.Get("secret")); code != 0 {
		writeError(w, code, "")
		return
	}
	s.mu.Lock()
	now := s.now()
	if prev := s.classic; prev != nil && prev.revoked.IsZero() {
		prev.revoked = now.Add(TokenOverlap)
	}
	s.classic = s.issue(now)
	tok := s.classic
	s.mu.Unlock()
	writeToken(w, tok, now)
}

// issue makes a new token; the caller holds mu.
func (s *Server) issue(now time.Time) *issuedToken {
	t := &issuedToken{value: randomString(108), expires: now.Add(TokenLifetime)}
	s.tokens[t.value] = t
	return t
}

func writeToken(w http.ResponseWriter, t *issuedToken, now time.Time) {
	writeJSON(w, map[string]any{
		"access_token": t.value,
		"expires_in":   int64(t.expires.Sub(now) / time.Second),
	})
}

// InvalidateTokens makes every access token issued so far stop working at once, as a
// force refresh elsewhere or a leaked-token reset would: APIs answer 40001 for them, and
// both token endpoints hand out new ones.
func (s *Server) InvalidateTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	for _, t := range s.tokens {
		if t.revoked.IsZero() || t.revoked.After(now) {
			t.revoked = now
		}
	}
}

// AccessTokenValid reports whether token is an access token the APIs accept now.
func (s *Server) AccessTokenValid(token string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tokens[token]
	return ok && t.check(s.now()) == 0
}

// checkToken returns the errcode for the request's access_token, or 0.
func (s *Server) checkToken(r *http.Request) int {
	v := r.URL.Query().Get("access_token")
	if v == "" {
		return 41001
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tokens[v]
	if !ok {
		return 40001
	}
	return t.check(s.now())
}

func (s *Server) checkSession(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		writeError(w, 43001, "")
		return
	}
	if code := s.checkToken(r); code != 0 {
		writeError(w, code, "")
		return
	}
	q := r.URL.Query()
	s.mu.Lock()
	var key string
	if u, ok := s.users[q.Get("openid")]; ok {
		key = u.SessionKey
	}
	s.mu.Unlock()
	m := hmac.New(sha256.New, []byte(key))
	want := hex.EncodeToString(m.Sum(nil))
	if key == "" || q.Get("sig_method") != "hmac_sha256" || !hmac.Equal([]byte(q.Get("signature")), []byte(want)) {
		writeError(w, 87009, "")
		return
	}
	writeJSON(w, map[string]any{"errcode": 0, "errmsg": "ok"})
}

func (s *Server) phoneNumber(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		writeError(w, 43002, "")
		return
	}
	if code := s.checkToken(r); code != 0 {
		writeError(w, code, "")
		return
	}
	var in struct {
		Code string `json:"code"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&in); err != nil {
		writeError(w, 47001, "")
		return
	}
	s.mu.Lock()
	now := s.now()
	c, ok := s.phoneCodes.get(in.Code)
	if !ok || c.used || c.expired(now) {
		s.mu.Unlock()
		writeError(w, 40029, "")
		return
	}
	c.used = true
	u := *s.users[c.openID]
	numeric := s.numericCC
	s.mu.Unlock()

	var cc any = u.CountryCode
	if n, err := strconv.Atoi(u.CountryCode); err == nil && numeric {
		cc = n
	}
	number := u.PhoneNumber
	if u.CountryCode != "86" {
		number = "+" + u.CountryCode + " " + u.PhoneNumber
	}
	writeJSON(w, map[string]any{
		"errcode": 0,
		"errmsg":  "ok",
		"phone_info": map[string]any{
			"phoneNumber":     number,
			"purePhoneNumber": u.PhoneNumber,
			"countryCode":     cc,
			"watermark":       map[string]any{"timestamp": now.Unix(), "appid": s.appID},
		},
	})
}

// devCode serves GET /wxtest/code?openid=X: a new login code, for clients without WeChat.
func (s *Server) devCode(w http.ResponseWriter, r *http.Request) {
	openID := r.URL.Query().Get("openid")
	if openID == "" {
		openID = "o" + randomString(27)
	}
	writeJSON(w, map[string]string{"code": s.NewCode(openID), "openid": openID})
}

func writeError(w http.ResponseWriter, code int, msg string) {
	if msg == "" {
		msg = messages[code]
	}
	if msg == "" {
		msg = "fault injected by wxtest"
	}
	writeJSON(w, map[string]any{"errcode": code, "errmsg": msg})
}

func writeJSON(w http.ResponseWriter, v any) {
	writeJSONAs(w, "application/json; encoding=utf-8", v)
}

func writeJSONAs(w http.ResponseWriter, contentType string, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", contentType)
	w.Write(b)
}
