package wx_test

import (
	"encoding/json"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/mpsession/mpsession/internal/testenv"
	"github.com/mpsession/mpsession/wx"
	"github.com/mpsession/mpsession/wx/wxtest"
)

func TestMain(m *testing.M) {
	testenv.QuietRedisLog()
	goleak.VerifyTestMain(m)
}

const (
	testAppID  = "wx4f4bc4dec97d474b"
	testSecret = "9f3c1ab27d4e8f60b5c2a1d0e9f87a6b" // looks like a real AppSecret: 32 hex
)

// newFake starts a fake WeChat server that closes when the test ends.
func newFake(t testing.TB) *wxtest.Server {
	t.Helper()
	s := wxtest.NewServer(testAppID, testSecret)
	t.Cleanup(s.Close)
	return s
}

// waitCall waits until the fake has received a request at endpoint.
func waitCall(t testing.TB, fake *wxtest.Server, endpoint string) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); fake.Calls(endpoint) == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no %s request within 5 s", endpoint)
		}
	}
}

// newHTTPClient returns an HTTP client with its own connection pool, closed at the end of
// the test, so that no idle connection outlives it.
func newHTTPClient(t testing.TB, timeout time.Duration) *http.Client {
	t.Helper()
	tr := &http.Transport{MaxIdleConnsPerHost: 16}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Timeout: timeout, Transport: tr}
}

// newClient returns a Client for fake; zero fields of cfg get the test's AppID, secret,
// base URL and a private HTTP client.
func newClient(t testing.TB, fake *wxtest.Server, cfg wx.Config) *wx.Client {
	t.Helper()
	if cfg.AppID == "" {
		cfg.AppID = testAppID
	}
	if cfg.AppSecret == "" {
		cfg.AppSecret = testSecret
	}
	if cfg.BaseURL == "" {
		cfg.BaseURL = fake.URL
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = newHTTPClient(t, 5*time.Second)
	}
	c, err := wx.New(cfg)
	if err != nil {
		t.Fatalf("wx.New: %v", err)
	}
	return c
}

// vectors are the official WeChat crypto examples (testdata/wechat-vectors.json).
type vectors struct {
	Decrypt struct {
		AppID         string          `json:"appId"`
		SessionKey    string          `json:"sessionKey"`
		IV            string          `json:"iv"`
		EncryptedData string          `json:"encryptedData"`
		Plaintext     json.RawMessage `json:"plaintext"`
	} `json:"decrypt"`
	RawDataSignature struct {
		RawData    string `json:"rawData"`
		SessionKey string `json:"sessionKey"`
		Signature  string `json:"signature"`
	} `json:"rawDataSignature"`
	HMACSHA256 struct {
		Key       string `json:"key"`
		Message   string `json:"message"`
		Signature string `json:"signature"`
	} `json:"hmacSha256"`
}

// vectorsPath holds the official vectors; testdata/README.md says where they come from.
const vectorsPath = "testdata/wechat-vectors.json"

// loadVectors reads the official vectors; a missing file fails the test, since the crypto
// would then go unchecked.
func loadVectors(t testing.TB) vectors {
	t.Helper()
	b, err := os.ReadFile(vectorsPath)
	if err != nil {
		t.Fatalf("official WeChat vectors missing: %v", err)
	}
	var v vectors
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("reading %s: %v", vectorsPath, err)
	}
	return v
}

// redisForTest connects to the test Redis and returns it with a key prefix of the
// test's own; the keys are deleted when the test ends. Without Redis the test fails in
// CI and skips elsewhere.
func redisForTest(t testing.TB) (*redis.Client, string) {
	t.Helper()
	rdb := testenv.Redis(t)
	return rdb, testenv.RedisPrefix(t, rdb)
}
