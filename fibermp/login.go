package fibermp

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/utils"

	"github.com/mpsession/mpsession/internal/counting"
	"github.com/mpsession/mpsession/internal/session"
	"github.com/mpsession/mpsession/store"
	"github.com/mpsession/mpsession/store/storekit"
	"github.com/mpsession/mpsession/wx"
)

// Login is a login in progress, handed to Config.OnLogin.
type Login struct {
	// OpenID and UnionID identify the user, as jscode2session gave them; UnionID is ""
	// when the mini program is not bound to an Open Platform account.
	OpenID  string
	UnionID string

	// UserInfo is the user data the client sent, decrypted and verified, or nil.
	UserInfo json.RawMessage

	fields map[string]string
}

// Set adds field key, encoded as JSON, to the session about to be created.
func (l *Login) Set(key string, v any) error {
	name, val, err := session.EncodeField(key, v)
	if err != nil {
		return err
	}
	l.fields[name] = val
	return nil
}

// loginRequest is what a client sends to log in.
type loginRequest struct {
	Code          string `json:"code"`
	EncryptedData string `json:"encryptedData"`
	IV            string `json:"iv"`
	RawData       string `json:"rawData"`
	Signature     string `json:"signature"`
}

// Limits on login input, far above what WeChat issues.
const (
	maxCodeLen      = 256
	maxLoginBodyLen = 32 << 10
)

// loginError is a refused login and the HTTP status it is answered with.
type loginError struct {
	status int
	msg    string
	wechat bool // jscode2session failed
}

func (e *loginError) Error() string { return e.msg }

func (m *Manager) login(c *fiber.Ctx) error {
	p := m.proto
	req, err := readLogin(c, p, m.cfg.QueryCredentials)
	if err != nil {
		m.counts.Login(counting.LoginRejected)
		return session.LoginFailed(c, p, fiber.StatusBadRequest, err.Error())
	}
	// Concurrent logins with the same code (a client that retried, two requests
	// racing) share one exchange: WeChat would answer the second with 40163.
	v, err, _ := m.logins.Do(req.Code, func() (any, error) {
		return m.createSession(c, req)
	})
	if err != nil {
		var le *loginError
		if errors.As(err, &le) {
			if le.wechat {
				m.counts.Login(counting.LoginWeChatError)
			} else {
				m.counts.Login(counting.LoginRejected)
			}
			return session.LoginFailed(c, p, le.status, le.msg)
		}
		m.counts.Login(counting.LoginUnavailable)
		return session.Unavailable(c, "session store unavailable")
	}
	m.counts.Login(counting.LoginOK)
	r := v.(*loginResult)
	return session.LoginReply(c, p, r.session, int64(m.cfg.IdleTimeout.Seconds()), r.userInfo)
}

type loginResult struct {
	session  *session.State
	userInfo json.RawMessage
}

func readLogin(c *fiber.Ctx, p session.Protocol, query bool) (loginRequest, error) {
	var req loginRequest
	if p == session.Token {
		if c.Method() != fiber.MethodPost {
			return req, errors.New("log in with POST")
		}
		body := c.Body()
		if len(body) > maxLoginBodyLen {
			return req, errors.New("login body too large")
		}
		if err := json.Unmarshal(body, &req); err != nil {
			return req, errors.New("login body is not a JSON object: " + err.Error())
		}
	} else {
		// Copies: these outlive the handler inside the shared login.
		q := query
		req.Code = utils.CopyString(session.Param(c, HeaderCode, q))
		req.EncryptedData = utils.CopyString(session.Param(c, HeaderEncryptedData, q))
		req.IV = utils.CopyString(session.Param(c, HeaderIV, q))
		req.RawData = utils.CopyString(session.Param(c, HeaderRawData, q))
		req.Signature = utils.CopyString(session.Param(c, HeaderSignature, q))
	}
	switch {
	case req.Code == "":
		if p == session.Token {
			return req, errors.New(`missing "code"`)
		}
		return req, errors.New("missing " + HeaderCode + " header")
	case len(req.Code) > maxCodeLen:
		return req, errors.New("code too long")
	case (req.EncryptedData == "") != (req.IV == ""):
		return req, errors.New("encrypted data and iv must be sent together")
	case (req.RawData == "") != (req.Signature == ""):
		return req, errors.New("raw data and signature must be sent together")
	}
	return req, nil
}

// createSession exchanges the code, verifies the user data, runs OnLogin and stores the
// new session.
func (m *Manager) createSession(c *fiber.Ctx, req loginRequest) (*loginResult, error) {
	ctx := c.UserContext()
	wxs, err := m.cfg.Client.Code2Session(ctx, req.Code)
	if err != nil {
		err = code2SessionError(err)
		var le *loginError
		if errors.As(err, &le) {
			le.wechat = true
		}
		return nil, err
	}
	l := &Login{OpenID: wxs.OpenID, UnionID: wxs.UnionID, fields: make(map[string]string, 8)}
	if req.RawData != "" && !wx.VerifySignature(req.RawData, wxs.SessionKey, req.Signature) {
		return nil, &loginError{status: fiber.StatusBadRequest, msg: "raw data signature does not match"}
	}
	if req.EncryptedData != "" {
		plain, err := m.cfg.Client.Decrypt(wxs.SessionKey, req.EncryptedData, req.IV, m.cfg.UserDataMaxAge)
		if err != nil {
			return nil, &loginError{status: fiber.StatusBadRequest, msg: "encrypted user data rejected: " + err.Error()}
		}
		// The openid comes from jscode2session; user data that names another user
		// was not made for this login.
		var ids struct {
			OpenID string `json:"openId"`
		}
		if json.Unmarshal(plain, &ids) == nil && ids.OpenID != "" && ids.OpenID != wxs.OpenID {
			return nil, &loginError{status: fiber.StatusBadRequest, msg: "encrypted user data belongs to another user"}
		}
		l.UserInfo = plain
	}
	if m.cfg.OnLogin != nil {
		if err := m.cfg.OnLogin(c, l); err != nil {
			return nil, &loginError{status: fiber.StatusForbidden, msg: err.Error()}
		}
	}

	now := time.Now()
	cred := session.NewCredentials(m.proto)
	fields := l.fields
	// Secrets are sealed at rest, under a key the store never sees (the session id).
	fields[session.FieldSessionKey] = session.Seal(cred.ID, session.FieldSessionKey, wxs.SessionKey)
	fields[session.FieldCreated] = strconv.FormatInt(now.UnixMilli(), 10)
	if wxs.UnionID != "" {
		fields[session.FieldUnionID] = session.Seal(cred.ID, session.FieldUnionID, wxs.UnionID)
	}
	if cred.Skey != "" {
		fields[session.FieldSkey] = session.HashSkey(cred.Skey)
	}
	if l.UserInfo != nil {
		fields[session.FieldUserInfo] = session.Seal(cred.ID, session.FieldUserInfo, string(l.UserInfo))
	}
	rec := store.Record{Fields: fields, Owner: wxs.OpenID, Deadline: now.Add(m.cfg.AbsoluteTimeout)}
	if err := m.eng.Store.Create(ctx, cred.ID, rec, m.cfg.IdleTimeout); err != nil {
		if errors.Is(err, store.ErrTooLarge) {
			return nil, &loginError{status: fiber.StatusRequestEntityTooLarge, msg: "session too large: " + err.Error()}
		}
		return nil, err
	}
	if m.cfg.SingleSession {
		if _, err := m.eng.Store.DeleteOwner(ctx, wxs.OpenID, cred.ID); err != nil {
			_ = m.eng.Store.Delete(ctx, cred.ID)
			return nil, err
		}
		// Two logins of one user at the same moment revoke each other's sessions:
		// answer only with a session that survived.
		if _, err := m.eng.Store.Load(ctx, cred.ID, 0); errors.Is(err, store.ErrNotFound) {
			return nil, &loginError{status: fiber.StatusConflict, msg: "another login of this user replaced this one"}
		} else if err != nil {
			return nil, err
		}
	}
	rec.ExpiresAt = storekit.ExpiresAt(now, m.cfg.IdleTimeout, rec.Deadline)
	s := m.eng.NewState(ctx, cred, &rec)
	return &loginResult{session: s, userInfo: l.UserInfo}, nil
}

// code2SessionError turns a jscode2session failure into a refused login that says why.
// The client learns WeChat's errcode and fixed words for its class, never WeChat's errmsg
// nor any other detail: an errmsg may echo what the server sent (AppID, code, request
// ids), and a reply that could not be read may hold what no client may see.
func code2SessionError(err error) error {
	var ae *wx.APIError
	if !errors.As(err, &ae) {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return &loginError{status: fiber.StatusGatewayTimeout, msg: "WeChat did not answer in time"}
		}
		var he *wx.HTTPError
		if errors.As(err, &he) {
			return &loginError{status: fiber.StatusBadGateway, msg: "WeChat answered HTTP " + strconv.Itoa(he.StatusCode)}
		}
		if errors.Is(err, wx.ErrMalformed) {
			return &loginError{status: fiber.StatusBadGateway, msg: "WeChat's answer could not be read"}
		}
		return &loginError{status: fiber.StatusBadGateway, msg: "WeChat could not be reached"}
	}
	status, msg := fiber.StatusBadGateway, "WeChat refused the login"
	switch {
	case ae.InvalidCode():
		status, msg = fiber.StatusUnauthorized, "invalid login code"
	case ae.CodeUsed():
		status, msg = fiber.StatusUnauthorized, "login code already used"
	case ae.Blocked():
		status = fiber.StatusForbidden
	case ae.RateLimited():
		status, msg = fiber.StatusTooManyRequests, "too many logins, try again later"
	case ae.Busy():
		status, msg = fiber.StatusServiceUnavailable, "WeChat is busy"
	}
	return &loginError{status: status, msg: "errcode " + strconv.Itoa(ae.Code) + ": " + msg}
}
