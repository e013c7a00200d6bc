// Package wx is a client for the WeChat server APIs behind a mini program's login:
// exchanging login codes (jscode2session), access tokens, checking a session_key,
// phone numbers, and decrypting and verifying the user data a mini program sends.
//
// The login step of a server:
//
//	client, err := wx.New(wx.Config{AppID: "wx...", AppSecret: secret})
//	if err != nil { ... }
//	sess, err := client.Code2Session(ctx, code) // code from wx.login on the phone
//	if apiErr, ok := errors.AsType[*wx.APIError](err); ok && (apiErr.InvalidCode() || apiErr.CodeUsed()) {
//		// the client must call wx.login again
//	}
//	if !wx.VerifySignature(rawData, sess.SessionKey, signature) { ... }
//	info, err := client.Decrypt(sess.SessionKey, encryptedData, iv, 10*time.Minute)
//	// sess.OpenID identifies the user; never take it from the decrypted data.
//
// # Access tokens
//
// APIs other than jscode2session need an access token; the Client fetches and caches it.
// It uses stable_token in normal mode by default, so several processes (or a staging and
// a production server) never invalidate each other's tokens, and never asks WeChat to
// force a refresh (20 a day at most). In one process, concurrent callers share one fetch;
// with Config.TokenLock (see NewRedisTokenCache) all processes share one. When an API
// rejects the token (errcode 40001, 40014, 42001) the Client drops it from the cache, but
// only if the cache still holds that very token, and retries once with a fresh one.
//
// # Errors
//
// WeChat's refusals are *APIError, with methods for the codes callers branch on. A reply
// that is not JSON wraps ErrMalformed, an HTTP status other than 200 is *HTTPError, and
// transport failures keep their cause (context.DeadlineExceeded, ...). Every message
// names the API; none holds the AppSecret, an access token, a session_key or a URL
// carrying them. An unreadable reply is quoted only if it is neither JSON nor a
// jscode2session reply, so that a proxy's error page shows.
//
// # Testing
//
// Package wxtest is a fake WeChat server API with users, codes, tokens and fault
// injection; point Config.BaseURL at it.
//
// # HTTP
//
// Requests go through net/http (Config.HTTPClient; by default a shared client with a 10 s
// timeout). Every method honours its context. A token fetch or code exchange that other
// callers share goes on when the caller that started it gives up, for 30 s at most, so
// that they still get its result.
package wx
