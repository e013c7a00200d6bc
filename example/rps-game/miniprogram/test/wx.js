// A stub of the mini-program runtime for node, backed by real calls: wx.request makes
// HTTP requests, wx.connectSocket opens a real WebSocket (node's, which sends the
// header: run node with --experimental-websocket on node 20), storage lives in memory,
// and wx.login gets its code from the development server's fake WeChat
// (GET /wxtest/code?openid=X), where the real one would get it from WeChat. WeChat's
// language is lang ("zh_CN", "en"...), as the test says.
// App, Page and getApp do what the runtime does with the app's and the page's objects.
'use strict';
const http = require('http');

module.exports = function install(base, openid, lang) {
  // What the mini program did (logins, sockets, the navigation bar's title), and the
  // messages it never got.
  const log = { logins: 0, sockets: [], lost: [], title: '' };
  // connectSocket calls to fail as a lost network would; deaf: messages arriving now
  // are lost, as on a network that went away before the socket is seen closed.
  const net = { refuse: 0, deaf: false };
  const storage = new Map();

  function request({ url, method = 'GET', header = {}, data }) {
    return new Promise((resolve, reject) => {
      let body;
      if (data !== undefined && method !== 'GET') {
        body = JSON.stringify(data);
        header = Object.assign({ 'content-type': 'application/json' }, header);
      }
      const req = http.request(url, { method, headers: header, timeout: 10000 }, (res) => {
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
      if (body) req.end(body);
      else req.end();
    });
  }

  // socketTask is what wx.connectSocket returns, over a WebSocket.
  function socketTask(url, header) {
    const rec = { url, header, at: Date.now(), opened: false, code: 0 };
    log.sockets.push(rec);
    const on = { open() {}, message() {}, close() {}, error() {} };
    const task = {
      onOpen(fn) { on.open = fn; },
      onMessage(fn) { on.message = fn; },
      onClose(fn) { on.close = fn; },
      onError(fn) { on.error = fn; },
      send({ data }) { ws.send(data); },
      close({ code = 1000 } = {}) { if (ws) ws.close(code); },
      // drop loses the connection, as a phone that loses its network does: the mini
      // program is told 1006. (The server sees a close frame: node's WebSocket cannot
      // drop a connection without one.)
      drop() {
        net.deaf = false;
        ws.onclose = null;
        ws.close();
        rec.code = 1006;
        on.close({ code: 1006, reason: '' });
      },
    };
    let ws = null;
    if (net.refuse > 0) {
      net.refuse--;
      rec.refused = true;
      setTimeout(() => { on.error({ errMsg: 'connectSocket:fail' }); on.close({ code: 1006, reason: '' }); }, 10);
      return task;
    }
    // undici's WebSocket (node's) takes headers in its second argument, as the runtime does.
    ws = new WebSocket(url, { headers: header });
    ws.onopen = () => { rec.opened = true; on.open({}); };
    ws.onmessage = (e) => {
      // A network going away loses what was on its way before the socket is seen closed.
      if (net.deaf) log.lost.push(e.data);
      else on.message({ data: e.data });
    };
    ws.onerror = () => on.error({ errMsg: 'socket error' });
    ws.onclose = (e) => { rec.code = e.code; on.close({ code: e.code, reason: e.reason }); };
    log.task = task;
    return task;
  }

  global.wx = {
    login({ success, fail }) {
      log.logins++;
      request({ url: base + '/wxtest/code?openid=' + encodeURIComponent(openid) })
        .then((r) => success({ code: r.data.code, errMsg: 'login:ok' }), (e) => fail({ errMsg: 'login:fail ' + e.message }));
    },
    request(opts) {
      request(opts).then((r) => opts.success && opts.success(r), (e) => opts.fail && opts.fail({ errMsg: 'request:fail ' + e.message }));
    },
    connectSocket({ url, header }) {
      if (header && header.Referer) throw new Error('connectSocket: Referer cannot be set');
      return socketTask(url, header || {});
    },
    getAppBaseInfo() { return { language: lang, SDKVersion: '3.0.0' }; },
    getSystemInfoSync() { return { language: lang, SDKVersion: '3.0.0', platform: 'devtools' }; },
    setNavigationBarTitle({ title }) { log.title = title; },
    getStorageSync(k) { return storage.has(k) ? storage.get(k) : ''; },
    setStorageSync(k, v) { storage.set(k, v); },
    removeStorageSync(k) { storage.delete(k); },
  };

  // The runtime calls App and Page with the objects that app.js and the page's script
  // define, and calls their hooks; a page's setData merges into its data.
  const loaded = { app: null, page: null };
  global.App = (def) => { loaded.app = Object.assign({}, def); };
  global.getApp = () => loaded.app;
  global.Page = (def) => {
    const page = Object.assign({}, def, { data: JSON.parse(JSON.stringify(def.data || {})) });
    page.setData = function (patch) { Object.assign(this.data, patch); };
    loaded.page = page;
  };
  return { log, net, storage, loaded, request };
};
