package wx_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/mpsession/mpsession/wx"
	"github.com/mpsession/mpsession/wx/wxtest"
)

func TestPhoneNumber(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name    string
		user    wxtest.User
		numeric bool
		want    wx.PhoneInfo
	}{
		{
			name: "country code as string",
			user: wxtest.User{OpenID: "o-cn", PhoneNumber: "13800138000", CountryCode: "86"},
			want: wx.PhoneInfo{PhoneNumber: "13800138000", PurePhoneNumber: "13800138000", CountryCode: "86"},
		},
		{
			name:    "country code as number",
			user:    wxtest.User{OpenID: "o-cn", PhoneNumber: "13800138000", CountryCode: "86"},
			numeric: true,
			want:    wx.PhoneInfo{PhoneNumber: "13800138000", PurePhoneNumber: "13800138000", CountryCode: "86"},
		},
		{
			name:    "outside mainland",
			user:    wxtest.User{OpenID: "o-hk", PhoneNumber: "61234567", CountryCode: "852"},
			numeric: true,
			want:    wx.PhoneInfo{PhoneNumber: "+852 61234567", PurePhoneNumber: "61234567", CountryCode: "852"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := newFake(t)
			c := newClient(t, fake, wx.Config{})
			fake.AddUser(tt.user)
			fake.NumericCountryCode(tt.numeric)
			got, err := c.PhoneNumber(ctx, fake.NewPhoneCode(tt.user.OpenID))
			if err != nil {
				t.Fatalf("PhoneNumber: %v", err)
			}
			if got.Watermark.AppID != testAppID || time.Since(time.Unix(got.Watermark.Timestamp, 0)) > time.Minute {
				t.Errorf("want a fresh watermark for %s; got %+v", testAppID, got.Watermark)
			}
			got.Watermark = wx.Watermark{}
			if *got != tt.want {
				t.Errorf("want %+v; got %+v", tt.want, *got)
			}
		})
	}
}

func TestPhoneNumberErrors(t *testing.T) {
	ctx := context.Background()
	fake := newFake(t)
	c := newClient(t, fake, wx.Config{})
	used := fake.NewPhoneCode("o-alice")
	if _, err := c.PhoneNumber(ctx, used); err != nil {
		t.Fatalf("first exchange: %v", err)
	}
	expired := fake.NewPhoneCode("o-alice")
	fake.Advance(wxtest.CodeLifetime)

	tests := []struct {
		name     string
		code     string
		fault    *wxtest.Fault
		wantCode int
		wantMalf bool
	}{
		{"unknown code", "nope", nil, 40029, false},
		{"used code", used, nil, 40029, false},
		{"expired code", expired, nil, 40029, false},
		{"rate limited", fake.NewPhoneCode("o-alice"), &wxtest.Fault{ErrCode: 45011}, 45011, false},
		{"busy", fake.NewPhoneCode("o-alice"), &wxtest.Fault{ErrCode: -1}, -1, false},
		{"no phone_info", fake.NewPhoneCode("o-alice"), &wxtest.Fault{Body: `{"errcode":0,"errmsg":"ok"}`}, 0, true},
		{"countryCode an object", fake.NewPhoneCode("o-alice"), &wxtest.Fault{Body: `{"phone_info":{"phoneNumber":"1","countryCode":{}}}`}, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.fault != nil {
				fake.Fail(wxtest.PhoneNumber, *tt.fault)
			}
			_, err := c.PhoneNumber(ctx, tt.code)
			if tt.wantMalf {
				if !errors.Is(err, wx.ErrMalformed) {
					t.Errorf("want ErrMalformed; got %v", err)
				}
				return
			}
			apiErr, ok := errors.AsType[*wx.APIError](err)
			if !ok || apiErr.Code != tt.wantCode || apiErr.Op != "getuserphonenumber" {
				t.Errorf("want errcode %d from getuserphonenumber; got %v", tt.wantCode, err)
			}
		})
	}
	if _, err := c.PhoneNumber(ctx, ""); err == nil {
		t.Errorf("empty code: want an error; got nil")
	}
	if got := fake.ForceRefreshes(); got != 0 {
		t.Errorf("want no force_refresh; got %d", got)
	}
}
