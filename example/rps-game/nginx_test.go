package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/mpsession/mpsession/internal/testenv"
	"github.com/mpsession/mpsession/wx/wxtest"
)

// TestBehindNginx runs deploy/nginx.conf, as a reader deploys it, in front of two
// instances on Redis: the page and the leaderboard over https, two players logging in
// through it and playing a whole match over wss with their sockets on different
// instances, and what the file shuts (plain http, /metrics, logins past the rate).
// The instances use a stand-in for real WeChat, as behind nginx in production: the
// file shuts /wxtest, and a code from one instance's fake would not log in on the other.
func TestBehindNginx(t *testing.T) {
	bin := findNginx(t)
	wechat := wxtest.NewServer("wx1234567890abcdef", "real-secret")
	t.Cleanup(wechat.Close)
	a, b := twoInstances(t, config{AppID: wechat.AppID(), Secret: "real-secret", WeChatURL: wechat.URL, Proxies: []string{"127.0.0.1"}})
	ng := startNginx(t, bin, a, b)

	// The page and the leaderboard, as anyone reads them.
	if code, body := ng.get(t, ng.https+"/"); code != http.StatusOK || !strings.Contains(body, `<script src="app.js">`) {
		t.Errorf("GET / through nginx: want the page; got %d: %.200s", code, body)
	}
	if code, body := ng.get(t, ng.https+"/api/leaderboard"); code != http.StatusOK || body != `{"players":[]}` {
		t.Errorf("GET /api/leaderboard through nginx: want 200 and no players yet; got %d: %s", code, body)
	}

	alice, bob := ng.login(t, wechat, "o-alice"), ng.login(t, wechat, "o-bob")

	// Each socket opens on whichever instance nginx picks. An instance's hub listens to
	// more topics as soon as a socket opens there (its user, its session, its rooms,
	// before the game's welcome), and nothing else runs on the instances meanwhile: that
	// says where a socket is without asking the socket.
	ta, tb := topics(a), topics(b)
	ca := ng.dial(alice)
	var home, away *server // alice's socket's instance, and the other
	switch {
	case topics(a) > ta && topics(b) == tb:
		home, away = a, b
	case topics(b) > tb && topics(a) == ta:
		home, away = b, a
	default:
		t.Fatalf("alice's socket: want it on one instance; topics went from %d, %d to %d, %d", ta, tb, topics(a), topics(b))
	}
	// nginx's round-robin sends the next socket to the other instance. Should it not, a
	// socket that lands beside alice's is closed and opened again, so the match below
	// crosses instances whatever the balancing.
	var cb *client
	for try := 1; cb == nil; try++ {
		n := topics(away)
		c := ng.dial(bob)
		if topics(away) > n {
			cb = c
			break
		}
		if try == 4 {
			t.Fatalf("4 sockets of bob's through nginx all opened on %s, beside alice's", home.url)
		}
		t.Logf("bob's socket opened on %s, beside alice's: opening another", home.url)
		_ = c.conn.Close()
	}

	// A whole match over wss, between the two instances.
	ca.send(clientMsg{Type: "queue"})
	ca.expect("queued")
	cb.send(clientMsg{Type: "queue"})
	cb.expect("matched")
	ca.expect("matched")
	oa, ob := playRounds(t, ca, cb, [][2]Choice{{Rock, Scissors}, {Scissors, Scissors}, {Paper, Rock}})
	if oa.Result != Win || *oa.Record != (record{Wins: 1}) || ob.Result != Lose || *ob.Record != (record{Losses: 1}) {
		t.Errorf("want alice 1-0-0 and bob 0-1-0; got %s %+v and %s %+v", oa.Result, oa.Record, ob.Result, ob.Record)
	}
	if got := alice.me().record; got != (record{Wins: 1}) {
		t.Errorf("alice's GET /api/me through nginx: want 1-0-0; got %+v", got)
	}
	var top struct{ Players []ranked }
	if code, body := ng.get(t, ng.https+"/api/leaderboard"); code != http.StatusOK || json.Unmarshal([]byte(body), &top) != nil ||
		len(top.Players) != 2 || top.Players[0].Nickname != "玩家-alice" || top.Players[0].Wins != 1 {
		t.Errorf("GET /api/leaderboard through nginx: want alice first with a win; got %d: %s", code, body)
	}

	// Plain http only redirects to https; /metrics is for the monitoring network only.
	once := *ng.http
	once.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := once.Get(ng.plain + "/api/leaderboard")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusMovedPermanently || loc != "https://127.0.0.1/api/leaderboard" {
		t.Errorf("plain http: want a 301 to https://127.0.0.1/api/leaderboard; got %d to %q", resp.StatusCode, loc)
	}
	if code, _ := ng.get(t, ng.https+"/metrics"); code != http.StatusForbidden {
		t.Errorf("GET /metrics from 127.0.0.1 through nginx: want 403; got %d", code)
	}

	// nginx answers logins past its rate (10 a minute, 5 more at once) with 429 before
	// the game sees them: the game refuses the made-up codes until then.
	for n := 1; ; n++ {
		resp, err := ng.http.Post(ng.https+"/login", "application/json", strings.NewReader(`{"code":"made-up"}`))
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode == http.StatusTooManyRequests {
			break
		}
		if resp.StatusCode != http.StatusUnauthorized || n == 20 {
			t.Fatalf("login %d with a made-up code: want 401, then 429 from nginx's limit; got %d", n, resp.StatusCode)
		}
	}
}

// findNginx returns the nginx binary's path.
func findNginx(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("nginx"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/nginx"); err == nil { // sbin is not on every user's PATH
		return "/usr/sbin/nginx"
	}
	testenv.Unavailable(t, "nginx is not installed (apt-get install -y nginx)")
	return ""
}

// topics is how many users, sessions and rooms the instance's hub listens to.
func topics(s *server) int { return s.ws.Hub().Stats().Topics }

// proxy is a running nginx and the test's clients of it, which trust its certificate.
type proxy struct {
	https string // https://127.0.0.1:port, the game
	plain string // http://127.0.0.1:port, which redirects to https
	roots *x509.CertPool
	http  *http.Client
}

// startNginx runs deploy/nginx.conf in front of the instances until the test ends. Only
// what a test machine needs is replaced: the listen ports, the certificate, the
// upstream addresses and the access log. A top-level file of the test's own includes
// it, as nginx.conf includes conf.d/ on a server, and keeps nginx's own files and
// process in the test's directory.
func startNginx(t *testing.T, bin string, instances ...*server) *proxy {
	t.Helper()
	dir := t.TempDir()
	cert, key, roots := selfSigned(t, dir)
	deploy, err := os.ReadFile("deploy/nginx.conf")
	if err != nil {
		t.Fatal(err)
	}
	top := `# One process, in the foreground: the test's kill ends it all.
daemon off;
master_process off;
pid ` + dir + `/nginx.pid;
error_log ` + dir + `/error.log info;
events { worker_connections 64; }
http {
    access_log ` + dir + `/access.log;
    client_body_temp_path ` + dir + `/body;
    proxy_temp_path ` + dir + `/proxy;
    fastcgi_temp_path ` + dir + `/fastcgi;
    uwsgi_temp_path ` + dir + `/uwsgi;
    scgi_temp_path ` + dir + `/scgi;
    include ` + dir + `/rps-game.conf;
}
`
	if err := os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(top), 0o600); err != nil {
		t.Fatal(err)
	}
	// A port another process takes between FreeAddr and nginx's start makes nginx exit
	// at once: try again on other ports.
	for attempt := 1; ; attempt++ {
		https, plain := testenv.FreeAddr(t), testenv.FreeAddr(t)
		conf := render(t, string(deploy), [][2]string{
			{"listen 443 ssl;", "listen " + https + " ssl;"},
			{"listen 80;", "listen " + plain + ";"},
			{"/etc/nginx/tls/game.example.fullchain.pem", cert},
			{"/etc/nginx/tls/game.example.key.pem", key},
			{"server 127.0.0.1:8080;", "server " + strings.TrimPrefix(instances[0].url, "http://") + ";"},
			{"server 127.0.0.1:8081;", "server " + strings.TrimPrefix(instances[1].url, "http://") + ";"},
			{"/var/log/nginx/rps-game.access.log", dir + "/rps-game.access.log"},
		})
		if err := os.WriteFile(filepath.Join(dir, "rps-game.conf"), []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, "-p", dir+"/", "-c", filepath.Join(dir, "nginx.conf"), "-e", filepath.Join(dir, "error.log"))
		out, err := os.Create(filepath.Join(dir, "output"))
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatalf("nginx: %v", err)
		}
		_ = out.Close() // nginx has its own copy
		exited := make(chan struct{})
		go func() {
			_ = cmd.Wait()
			close(exited)
		}()
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			<-exited
		})
		err = waitListening(https, exited)
		if err == nil {
			tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}
			t.Cleanup(tr.CloseIdleConnections)
			t.Cleanup(func() {
				if t.Failed() {
					for _, f := range []string{"output", "error.log"} {
						b, _ := os.ReadFile(filepath.Join(dir, f))
						t.Logf("nginx's %s:\n%s", f, b)
					}
				}
			})
			return &proxy{https: "https://" + https, plain: "http://" + plain, roots: roots,
				http: &http.Client{Transport: tr, Timeout: 10 * time.Second}}
		}
		b, _ := os.ReadFile(filepath.Join(dir, "output"))
		if !errors.Is(err, errNginxExited) || attempt == 3 {
			t.Fatalf("nginx on %s: %v\n%s", https, err, b)
		}
		t.Logf("nginx on %s exited; trying other ports:\n%s", https, b)
	}
}

// render replaces each pair's first string, which must be in conf once, by its second.
func render(t *testing.T, conf string, pairs [][2]string) string {
	t.Helper()
	for _, p := range pairs {
		if n := strings.Count(conf, p[0]); n != 1 {
			t.Fatalf("deploy/nginx.conf: want %q once, for the test to replace; got it %d times", p[0], n)
		}
		conf = strings.Replace(conf, p[0], p[1], 1)
	}
	return conf
}

var errNginxExited = errors.New("nginx exited")

// waitListening waits until addr accepts connections, for up to 10 s, or until exited
// is closed.
func waitListening(addr string, exited <-chan struct{}) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = c.Close()
			return nil
		}
		select {
		case <-exited:
			return errNginxExited
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return err
		}
	}
}

// selfSigned writes a certificate for 127.0.0.1 and localhost, signed by its own key,
// and its key, as PEM files in dir; roots trusts it.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, roots *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "rps-game test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	for file, block := range map[string]*pem.Block{certFile: {Type: "CERTIFICATE", Bytes: der}, keyFile: {Type: "PRIVATE KEY", Bytes: keyDER}} {
		if err := os.WriteFile(file, pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	roots = x509.NewCertPool()
	roots.AddCert(cert)
	return certFile, keyFile, roots
}

// get reads url and returns the status and the body.
func (p *proxy) get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := p.http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode, string(b)
}

// login logs openID in through nginx with a code of wechat, as a mini program does
// with the code of wx.login.
func (p *proxy) login(t *testing.T, wechat *wxtest.Server, openID string) *user {
	t.Helper()
	u := &user{t: t, base: p.https, openID: openID, http: p.http}
	var l struct{ Token, OpenID string }
	u.do("POST", "/login", map[string]string{"code": wechat.NewCode(openID)}, http.StatusOK, &l)
	if l.Token == "" || l.OpenID != openID {
		t.Fatalf("login through nginx: want a token for %q; got %+v", openID, l)
	}
	u.token = l.Token
	return u
}

// dial opens u's socket through nginx, over wss with the Authorization header as a
// mini program does, and reads the welcome.
func (p *proxy) dial(u *user) *client {
	u.t.Helper()
	d := websocket.Dialer{TLSClientConfig: &tls.Config{RootCAs: p.roots}, HandshakeTimeout: 10 * time.Second}
	url := "wss://" + strings.TrimPrefix(p.https, "https://") + "/ws"
	conn, resp, err := d.Dial(url, http.Header{"Authorization": {"Bearer " + u.token}})
	if err != nil {
		u.t.Fatalf("dial %s: %v (%v)", url, err, resp)
	}
	u.t.Cleanup(func() { _ = conn.Close() })
	c := &client{t: u.t, conn: conn, pos: map[string]string{}}
	if w := c.expect("welcome"); w.OpenID != u.openID {
		u.t.Errorf("welcome: want openid %q; got %q", u.openID, w.OpenID)
	}
	return c
}
