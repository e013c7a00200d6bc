// A stub of the mini-program runtime's `wx` object for node, shared by compat.js and
// tunnel.js: wx.login and wx.getUserInfo take codes and user data from the Go test,
// wx.request makes real HTTP requests, wx.connectSocket opens a real WebSocket (node
// --experimental-websocket), and storage lives in memory.
'use strict';
const http = require('http');
const { URL } = require('url');

const debug = process.env.WXSTUB_DEBUG ? (...a) => console.error('wxstub:', ...a) : () => {};

module.exports = function install(base) {
  function httpRequest({ url, method = 'GET', header = {}, data }) {
    return new Promise((resolve, reject) => {
      const u = new URL(url);
      // The mini-program runtime drops headers whose value is undefined (a code-only
      // login has no encrypted data); node would throw on them.
      header = Object.fromEntries(Object.entries(header || {}).filter(([, v]) => v !== undefined && v !== null));
      let body;
      if (data !== undefined && method !== 'GET') {
        body = JSON.stringify(data);
        header = Object.assign({ 'content-type': 'application/json' }, header);
      }
      const req = http.request(u, { method, headers: header, timeout: 10000 }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c) => (text += c));
        res.on('end', () => {
          let parsed = text;
          try { parsed = JSON.parse(text); } catch (_) { /* wx.request keeps the string */ }
          resolve({ data: parsed, statusCode: res.statusCode, header: res.headers });
        });
      });
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', reject);
      if (body) req.write(body);
      req.end();
    });
  }

  const storage = new Map();
  const counters = { login: 0, request: 0 };
  let socket = null;
  const socketHandlers = { open() {}, close() {}, message() {}, error() {} };
  global.wx = {
    login({ success, fail }) {
      counters.login++;
      httpRequest({ url: base + '/_wx/code' })
        .then((r) => success({ code: r.data.code, errMsg: 'login:ok' }))
        .catch((e) => fail && fail({ errMsg: String(e) }));
    },
    getUserInfo({ success, fail }) {
      httpRequest({ url: base + '/_wx/userinfo' })
        .then((r) => success(r.data))
        .catch((e) => fail && fail({ errMsg: String(e) }));
    },
    checkSession({ success }) { success({ errMsg: 'checkSession:ok' }); },
    request(opts) {
      counters.request++;
      httpRequest({ url: opts.url, method: opts.method || 'GET', header: opts.header, data: opts.data })
        .then((r) => opts.success && opts.success(r))
        .catch((e) => opts.fail && opts.fail({ errMsg: 'request:fail ' + e.message }))
        .finally(() => opts.complete && opts.complete());
    },
    // The legacy global socket API, which the SDKs' tunnels use: one socket at a time.
    onSocketOpen(fn) { socketHandlers.open = fn; },
    onSocketClose(fn) { socketHandlers.close = fn; },
    onSocketMessage(fn) { socketHandlers.message = fn; },
    onSocketError(fn) { socketHandlers.error = fn; },
    connectSocket({ url, header, protocols }) {
      debug('connectSocket', url);
    socket = new WebSocket(url, protocols);
      socket.onopen = () => socketHandlers.open({});
      socket.onmessage = (e) => { debug('message', e.data); socketHandlers.message({ data: e.data }); };
      socket.onclose = (e) => debug('close', e.code, e.reason) || socketHandlers.close({ code: e.code, reason: e.reason });
      socket.onerror = (e) => debug('error', e.message) || socketHandlers.error({ errMsg: String(e.message || e) });
    },
    sendSocketMessage({ data, fail }) {
      debug('send', data);
    try { socket.send(data); } catch (e) { fail && fail({ errMsg: String(e) }); }
    },
    closeSocket() { if (socket) socket.close(); },
    getStorageSync(k) { return storage.has(k) ? storage.get(k) : ''; },
    setStorageSync(k, v) { storage.set(k, v); },
    removeStorageSync(k) { storage.delete(k); },
  };
  return { storage, counters, httpRequest };
};
