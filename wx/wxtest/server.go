package wxtest

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"time"
)

// Endpoint names, for Fail and Calls. They are the last element of each API's path.
const (
	Code2Session = "jscode2session"     // GET  /sns/jscode2session
	StableToken  = "stable_token"       // POST /cgi-bin/stable_token
	Token        = "token"              // GET  /cgi-bin/token
	CheckSession = "checksession"       // GET  /wxa/checksession
	PhoneNumber  = "getuserphonenumber" // POST /wxa/business/getuserphonenumber
)

// Lifetimes, as WeChat has them.
const (
	// CodeLifetime is how long a login or phone code can be exchanged.
	CodeLifetime = 5 * time.Minute
	// TokenLifetime is the life of a new access token (expires_in 7200).
	TokenLifetime = 2 * time.Hour
	// TokenOverlap is how long a replaced token keeps working: a classic token after the
	// next fetch, a stable token after it is renewed. stable_token renews a token in
	// normal mode once it has less than this left.
	TokenOverlap = 5 * time.Minute
	// ForceRefreshInterval and ForceRefreshPerDay limit stable_token's force_refresh.
	ForceRefreshInterval = 30 * time.Second
	ForceRefreshPerDay   = 20
)

// Server is a fake WeChat server API for one mini program (AppID and AppSecret). It keeps
// users, codes and tokens in memory, answers as WeChat does, counts calls, and fails on
// demand. Its clock starts at the real time and moves with it; Advance moves it on.
// All methods are safe for concurrent use.
type Server struct {
	// URL is the base URL of the running server ("http://127.0.0.1:port"), for
	// wx.Config.BaseURL. It is empty for a Server made by New.
	URL string

	appID, secret string
	ts            *httptest.Server
	mux           *http.ServeMux

	mu         sync.Mutex
	offset     time.Duration // added to the real time
	users      map[string]*User
	codes      codeBook // login codes
	phoneCodes codeBook
	tokens     map[string]*issuedToken // every token ever issued
	stable     *issuedToken            // stable_token's current token
	classic    *issuedToken            // cgi-bin/token's latest token
	forced     []time.Time             // accepted force refreshes
	numericCC  bool                    // send countryCode as a number
	faults     map[string][]*fault
	calls      map[string]int
	forceCalls int
}

// New returns a Server that is not listening: mount Handler in a development server.
func New(appID, appSecret string) *Server {
	s := &Server{
		appID:      appID,
		secret:     appSecret,
		users:      make(map[string]*User),
		codes:      codeBook{byCode: make(map[string]*issuedCode)},
		phoneCodes: codeBook{byCode: make(map[string]*issuedCode)},
		tokens:     make(map[string]*issuedToken),
		faults:     make(map[string][]*fault),
		calls:      make(map[string]int),
	}
	s.mux = http.NewServeMux()
	s.mux.HandleFunc("/sns/jscode2session", s.endpoint(Code2Session, s.code2Session))
	s.mux.HandleFunc("/cgi-bin/stable_token", s.endpoint(StableToken, s.stableToken))
	s.mux.HandleFunc("/cgi-bin/token", s.endpoint(Token, s.classicToken))
	s.mux.HandleFunc("/wxa/checksession", s.endpoint(CheckSession, s.checkSession))
	s.mux.HandleFunc("/wxa/business/getuserphonenumber", s.endpoint(PhoneNumber, s.phoneNumber))
	s.mux.HandleFunc("/wxtest/code", s.devCode)
	return s
}

// NewServer returns a Server listening on a local port (an httptest.Server); URL holds
// its address. Close it when done.
func NewServer(appID, appSecret string) *Server {
	s := New(appID, appSecret)
	s.ts = httptest.NewServer(s.mux)
	s.URL = s.ts.URL
	return s
}

// Handler returns the HTTP handler of the fake API, rooted at "/" (use http.StripPrefix
// to mount it under a path). Besides WeChat's endpoints it serves a development helper:
// GET /wxtest/code?openid=X answers {"code":"...","openid":"X"} with a new login code for
// X (a new user if openid is empty), so a client without WeChat can log in.
//
// The handler must never be reachable in production, nor from any network you do not
// trust: /wxtest/code lets anyone log in as any openid, with no credential at all. Mount
// it only in development builds, and point wx.Config.BaseURL at it only there.
func (s *Server) Handler() http.Handler { return s.mux }

// Close shuts down a Server made by NewServer, closing client connections. It does
// nothing for a Server made by New.
func (s *Server) Close() {
	if s.ts != nil {
		s.ts.CloseClientConnections()
		s.ts.Close()
	}
}

// AppID returns the AppID the server answers for.
func (s *Server) AppID() string { return s.appID }

// Now returns the server's clock: the real time plus everything passed to Advance.
func (s *Server) Now() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.now()
}

func (s *Server) now() time.Time { return time.Now().Add(s.offset) }

// Advance moves the server's clock on by d, so that codes and tokens expire without
// waiting. It affects the server only; the wx.Client's cache keeps real time.
func (s *Server) Advance(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.offset += d
}

// Calls returns how many requests the endpoint received (see the endpoint constants),
// including those answered with a fault or an error.
func (s *Server) Calls(endpoint string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[endpoint]
}

// ForceRefreshes returns how many stable_token requests asked for force_refresh, accepted
// or not. A wx.Client never does.
func (s *Server) ForceRefreshes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.forceCalls
}

// ResetCalls sets every call counter, and the force-refresh counter, back to zero.
func (s *Server) ResetCalls() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.calls)
	s.forceCalls = 0
}

// NumericCountryCode makes getuserphonenumber send countryCode as a JSON number (86), as
// the official example does, rather than as a string ("86"), as the field table says.
func (s *Server) NumericCountryCode(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.numericCC = on
}
