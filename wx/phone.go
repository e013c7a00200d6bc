package wx

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
)

// PhoneInfo is the phone number a user agreed to share.
type PhoneInfo struct {
	// PhoneNumber is the number as the user shows it; it carries the country code
	// outside mainland China.
	PhoneNumber string
	// PurePhoneNumber is the number without the country code.
	PurePhoneNumber string
	// CountryCode is the country calling code, such as "86".
	CountryCode string
	// Watermark says which app the number was given to, and when.
	Watermark Watermark
}

// Watermark is the stamp WeChat puts on the user data it hands out.
type Watermark struct {
	// AppID is the mini program the data was given to.
	AppID string `json:"appid"`
	// Timestamp is when the data was given out, in Unix seconds.
	Timestamp int64 `json:"timestamp"`
}

// PhoneNumber exchanges a code from a getPhoneNumber button for the user's phone number
// (POST wxa/business/getuserphonenumber). Codes are single use and live 5 minutes; a bad
// or used one is an *APIError whose InvalidCode is true.
func (c *Client) PhoneNumber(ctx context.Context, code string) (*PhoneInfo, error) {
	if code == "" {
		return nil, errors.New("wx: getuserphonenumber: empty code")
	}
	var out phoneReply
	in := map[string]string{"code": code}
	if err := c.Call(ctx, http.MethodPost, "/wxa/business/getuserphonenumber", nil, in, &out); err != nil {
		return nil, err
	}
	return out.info()
}

// phoneReply is getuserphonenumber's answer. countryCode is documented as a string, but
// the official example sends a number; both are accepted.
type phoneReply struct {
	PhoneInfo *struct {
		PhoneNumber     string     `json:"phoneNumber"`
		PurePhoneNumber string     `json:"purePhoneNumber"`
		CountryCode     flexString `json:"countryCode"`
		Watermark       Watermark  `json:"watermark"`
	} `json:"phone_info"`
}

func (r *phoneReply) info() (*PhoneInfo, error) {
	p := r.PhoneInfo
	if p == nil || p.PhoneNumber == "" {
		return nil, &opError{msg: fmt.Sprintf("wx: getuserphonenumber: %v: no phone_info.phoneNumber", ErrMalformed), err: ErrMalformed}
	}
	return &PhoneInfo{
		PhoneNumber:     p.PhoneNumber,
		PurePhoneNumber: p.PurePhoneNumber,
		CountryCode:     string(p.CountryCode),
		Watermark:       p.Watermark,
	}, nil
}

// flexString decodes a JSON string or number as a string.
type flexString string

func (s *flexString) UnmarshalJSON(b []byte) error {
	if bytes.Equal(b, []byte("null")) {
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		var v string
		if err := json.Unmarshal(b, &v); err != nil {
			return err
		}
		*s = flexString(v)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		// b is not quoted: it is WeChat's reply, which errors never quote (see quotable).
		return errors.New("countryCode is neither a string nor a number")
	}
	*s = flexString(n.String())
	return nil
}
