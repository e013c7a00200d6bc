// Package wxtest is a fake WeChat server API for one mini program, for tests and for
// local development without WeChat.
//
// It serves jscode2session, stable_token, token, checksession and getuserphonenumber with
// WeChat's semantics: login and phone codes are single use and expire after 5 minutes
// (40163, 40029); stable_token returns the same token while it is valid and limits
// force_refresh; every classic token fetch retires the previous token 5 minutes later;
// expired and retired tokens are refused (42001, 40001). Its clock can be moved on
// (Advance) to expire codes and tokens without waiting.
//
// Tests create users and codes, get what a mini program would send (EncryptUserInfo,
// SignRawData), inject faults (Fail: errcodes, HTTP statuses, malformed bodies, latency,
// hang-ups) and count calls per endpoint (Calls):
//
//	fake := wxtest.NewServer("wx0123456789abcdef", "secret")
//	defer fake.Close()
//	client, _ := wx.New(wx.Config{AppID: fake.AppID(), AppSecret: "secret", BaseURL: fake.URL})
//	code := fake.NewCode("o-user-1")
//	fake.Fail(wxtest.Code2Session, wxtest.Fault{ErrCode: -1}) // WeChat busy, once
//	_, err := client.Code2Session(ctx, code)                   // *wx.APIError, Busy()
//	sess, err := client.Code2Session(ctx, code)                // the code still works
//	n := fake.Calls(wxtest.Code2Session)                       // 2
//
// In a development server, mount Handler (with http.StripPrefix if under a path) and
// point wx.Config.BaseURL at it; GET /wxtest/code?openid=X hands out login codes.
//
// Never let it be reachable in production: /wxtest/code logs anyone in as any openid
// they name, with no credential. Codes are dropped once they expire, so a long-running
// development server holds only those of the last CodeLifetime; users and tokens stay in
// memory for the life of the Server.
package wxtest
