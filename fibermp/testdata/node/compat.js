// Drives the real wafer-client-sdk / wafer2-client-sdk against a fibermp server.
//
//   node compat.js <wafer|wafer2> <server base URL>
//
// A stub `wx` object stands in for the mini-program runtime: wx.login takes a code
// from the Go test (which gets it from wxtest), wx.getUserInfo takes encrypted user data
// the same way, and wx.request makes real HTTP requests. Each step prints one JSON line;
// the Go test (fibermp/compat_test.go) reads them and checks the server side too.
'use strict';

const [sdkName, base] = process.argv.slice(2);
if (!sdkName || !base) {
  console.error('usage: node compat.js <wafer|wafer2> <base URL>');
  process.exit(2);
}

const { storage, counters, httpRequest } = require('./wxstub')(base);

const sdk = require(sdkName === 'wafer' ? 'wafer-client-sdk' : 'wafer2-client-sdk');
const storageKey = 'weapp_session_F2C224D4-2BCE-4C64-AF9F-A6D872000D1A';

function login() {
  return new Promise((resolve, reject) => sdk.login({ loginUrl: base + '/login', success: resolve, fail: reject }));
}
function request(path, opts = {}) {
  return new Promise((resolve, reject) =>
    sdk.request(Object.assign({ url: base + path, success: resolve, fail: reject }, opts)));
}
function session() {
  const s = storage.get(storageKey);
  return s ? { id: s.id || null, skey: s.skey } : null;
}
function out(step, extra) {
  console.log(JSON.stringify(Object.assign({ step, logins: counters.login, session: session() }, extra)));
}

(async () => {
  sdk.setLoginUrl(base + '/login');

  const userInfo = await login();
  out('login', { userInfo });

  let r = await request('/whoami');
  out('whoami', { status: r.statusCode, data: r.data });

  r = await request('/color', { method: 'POST', data: { color: 'teal' } });
  out('set', { status: r.statusCode, data: r.data });
  r = await request('/color');
  out('get', { status: r.statusCode, data: r.data });

  // The Go side ends the session behind the client's back: the next request must be
  // answered with the invalid-session reply, and the SDK must log in again and retry.
  await httpRequest({ url: base + '/_wx/expire', method: 'POST' });
  r = await request('/whoami');
  out('after-expire', { status: r.statusCode, data: r.data });

  r = await request('/logout');
  out('logout', { status: r.statusCode, data: r.data });
  r = await request('/whoami');
  out('after-logout', { status: r.statusCode, data: r.data });
})().catch((e) => {
  console.log(JSON.stringify({ step: 'error', type: e && e.type, message: e && e.message, logins: counters.login }));
  process.exit(1);
});
