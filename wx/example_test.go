package wx_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/mpsession/mpsession/wx"
	"github.com/mpsession/mpsession/wx/wxtest"
	"github.com/redis/go-redis/v9"
)

const (
	exampleAppID  = "wx0123456789abcdef"
	exampleSecret = "0123456789abcdef0123456789abcdef"
)

// The login step of a server: exchange the code from wx.login, then check what the mini
// program sent with it. Here the fake server stands in for WeChat and the phone.
func Example() {
	fake := wxtest.NewServer(exampleAppID, exampleSecret)
	defer fake.Close()
	fake.AddUser(wxtest.User{OpenID: "o-alice", UnionID: "u-alice"})
	code := fake.NewCode("o-alice") // what wx.login gives the mini program
	encryptedData, iv := fake.EncryptUserInfo("o-alice", map[string]any{"nickName": "Alice"})

	client, err := wx.New(wx.Config{AppID: exampleAppID, AppSecret: exampleSecret, BaseURL: fake.URL})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	sess, err := client.Code2Session(ctx, code)
	if err != nil {
		panic(err)
	}
	fmt.Println("openid:", sess.OpenID, "unionid:", sess.UnionID)

	plain, err := client.Decrypt(sess.SessionKey, encryptedData, iv, 10*time.Minute)
	if err != nil {
		panic(err)
	}
	var info struct{ NickName string }
	json.Unmarshal(plain, &info)
	fmt.Println("nickName:", info.NickName)

	// Codes are single use.
	_, err = client.Code2Session(ctx, code)
	if apiErr, ok := errors.AsType[*wx.APIError](err); ok && apiErr.CodeUsed() {
		fmt.Println(err)
	}
	// Output:
	// openid: o-alice unionid: u-alice
	// nickName: Alice
	// wx: jscode2session: errcode 40163: code been used
}

func ExampleClient_Code2Session_errors() {
	fake := wxtest.NewServer(exampleAppID, exampleSecret)
	defer fake.Close()
	client, _ := wx.New(wx.Config{AppID: exampleAppID, AppSecret: exampleSecret, BaseURL: fake.URL})
	ctx := context.Background()

	fake.Fail(wxtest.Code2Session, wxtest.Fault{ErrCode: -1})
	for _, code := range []string{fake.NewCode("o-bob"), "forged-code"} {
		_, err := client.Code2Session(ctx, code)
		apiErr, ok := errors.AsType[*wx.APIError](err)
		switch {
		case ok && (apiErr.InvalidCode() || apiErr.CodeUsed() || apiErr.Blocked()):
			fmt.Println("refuse the login:", err)
		case ok && (apiErr.Busy() || apiErr.RateLimited()):
			fmt.Println("try again later:", err)
		case err != nil:
			fmt.Println("WeChat unreachable:", err)
		}
	}
	// Output:
	// try again later: wx: jscode2session: errcode -1: system error
	// refuse the login: wx: jscode2session: errcode 40029: invalid code
}

func ExampleClient_PhoneNumber() {
	fake := wxtest.NewServer(exampleAppID, exampleSecret)
	defer fake.Close()
	fake.AddUser(wxtest.User{OpenID: "o-alice", PhoneNumber: "13800138000"})
	code := fake.NewPhoneCode("o-alice") // from a getPhoneNumber button

	client, _ := wx.New(wx.Config{AppID: exampleAppID, AppSecret: exampleSecret, BaseURL: fake.URL})
	info, err := client.PhoneNumber(context.Background(), code)
	if err != nil {
		panic(err)
	}
	fmt.Println(info.CountryCode, info.PurePhoneNumber)
	// Output: 86 13800138000
}

func ExampleClient_CheckSessionKey() {
	fake := wxtest.NewServer(exampleAppID, exampleSecret)
	defer fake.Close()
	key := fake.AddUser(wxtest.User{OpenID: "o-alice"}).SessionKey
	client, _ := wx.New(wx.Config{AppID: exampleAppID, AppSecret: exampleSecret, BaseURL: fake.URL})
	ctx := context.Background()

	fmt.Println(client.CheckSessionKey(ctx, "o-alice", key))
	fake.RotateSessionKey("o-alice") // the user logged in again
	err := client.CheckSessionKey(ctx, "o-alice", key)
	apiErr, _ := errors.AsType[*wx.APIError](err)
	fmt.Println(apiErr.InvalidSignature())
	// Output:
	// <nil>
	// true
}

func ExampleClient_AccessToken() {
	fake := wxtest.NewServer(exampleAppID, exampleSecret)
	defer fake.Close()
	client, _ := wx.New(wx.Config{AppID: exampleAppID, AppSecret: exampleSecret, BaseURL: fake.URL})
	ctx := context.Background()

	a, _ := client.AccessToken(ctx)
	b, _ := client.AccessToken(ctx)
	fmt.Println(a == b, fake.Calls(wxtest.StableToken))
	// Output: true 1
}

func ExampleVerifySignature() {
	// The example from WeChat's documentation.
	rawData := `{"nickName":"Band","gender":1,"language":"zh_CN","city":"Guangzhou","province":"Guangdong","country":"CN","avatarUrl":"http://wx.qlogo.cn/mmopen/vi_32/1vZvI39NWFQ9XM4LtQpFrQJ1xlgZxx3w7bQxKARol6503Iuswjjn6nIGBiaycAjAtpujxyzYsrztuuICqIM5ibXQ/0"}`
	sessionKey := "HyVFkGl5F5OQWJZZaNzBBg=="
	fmt.Println(wx.VerifySignature(rawData, sessionKey, "75e81ceda165f4ffa64f4068af58c64b8f54b88c"))
	fmt.Println(wx.VerifySignature(rawData+" ", sessionKey, "75e81ceda165f4ffa64f4068af58c64b8f54b88c"))
	// Output:
	// true
	// false
}

func ExampleDecrypt() {
	// The example from WeChat's documentation.
	const (
		appID         = "wx4f4bc4dec97d474b"
		sessionKey    = "tiihtNczf5v6AKRyjwEUhQ=="
		iv            = "r7BXXKkLb8qrSNn05n0qiA=="
		encryptedData = "CiyLU1Aw2KjvrjMdj8YKliAjtP4gsMZMQmRzooG2xrDcvSnxIMXFufNstNGTyaGS9uT5geRa0W4oTOb1WT7fJlAC+oNPdbB+3hVbJSRgv+4lGOETKUQz6OYStslQ142dNCuabNPGBzlooOmB231qMM85d2/fV6ChevvXvQP8Hkue1poOFtnEtpyxVLW1zAo6/1Xx1COxFvrc2d7UL/lmHInNlxuacJXwu0fjpXfz/YqYzBIBzD6WUfTIF9GRHpOn/Hz7saL8xz+W//FRAUid1OksQaQx4CMs8LOddcQhULW4ucetDf96JcR3g0gfRK4PC7E/r7Z6xNrXd2UIeorGj5Ef7b1pJAYB6Y5anaHqZ9J6nKEBvB4DnNLIVWSgARns/8wR2SiRS7MNACwTyrGvt9ts8p12PKFdlqYTopNHR1Vf7XjfhQlVsAJdNiKdYmYVoKlaRv85IfVunYzO0IKXsyl7JCUjCpoG20f0a04COwfneQAGGwd5oa+T8yO5hzuyDb/XcxxmK01EpqOyuxINew=="
	)
	plain, err := wx.Decrypt(appID, sessionKey, encryptedData, iv, 0)
	if err != nil {
		panic(err)
	}
	var info struct {
		NickName  string
		Watermark wx.Watermark
	}
	json.Unmarshal(plain, &info)
	fmt.Println(info.NickName, info.Watermark.AppID)

	_, err = wx.Decrypt("wx0000000000000000", sessionKey, encryptedData, iv, 0)
	fmt.Println(errors.Is(err, wx.ErrWatermark))
	// Output:
	// Band wx4f4bc4dec97d474b
	// true
}

// Processes that share Redis share the token and fetch it once between them.
func ExampleNewRedisTokenCache() {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	defer rdb.Close()
	cache := wx.NewRedisTokenCache(rdb, "myapp:")
	client, err := wx.New(wx.Config{
		AppID:      exampleAppID,
		AppSecret:  exampleSecret,
		TokenCache: cache,
		TokenLock:  cache,
	})
	if err != nil {
		panic(err)
	}
	_ = client
}
