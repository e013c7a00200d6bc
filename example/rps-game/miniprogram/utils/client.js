// The connection to the game server: the login (wx.login, then POST /login {"code"}),
// its token in storage, and one socket (wx.connectSocket, the token in an Authorization
// header), opened again with backoff when it drops. The page gets the server's messages
// and the connection's state; the rules and what to show are the page's.
'use strict';
const config = require('../config.js');

const TOKEN = 'rps.token'; // the storage key of the session's token
const RETRY_FIRST = 1000; // ms before the first reconnect; doubled each time, up to RETRY_MAX
const RETRY_MAX = 30000;

// The close codes that end the session under an open socket (wsauth): a reconnect with
// the same token would be refused, so the client logs in again.
const ENDED = { 4001: 'logged_out', 4002: 'revoked', 4003: 'expired' };

class Client {
  constructor() {
    this.token = wx.getStorageSync(TOKEN) || '';
    this.task = null; // the SocketTask, from connectSocket until it closes
    this.ready = false; // the server's welcome has arrived on task
    this.running = false; // between start and logout or stop
    this.opening = false; // between open and connect: logging in
    this.retries = 0; // reconnects since the last welcome
    this.timer = 0;
    // The Hub's recovery state of the last socket, {id, pos}: its id (from the Hub's
    // welcome) and the position of the last message read in each of its streams. The
    // next socket sends it (the X-Hub-Recover header) and is given what this one missed.
    this.recovery = null;
    this.recovered = false; // whether the open socket recovered its predecessor's messages
    // A match numbers what it tells of its course (matched, round) and tells it all again
    // to a socket that takes the seat back: the last one read, to skip the rest.
    this.seen = { match: '', seq: 0 };
    // The page's listeners: every server message, and the connection's state:
    // 'connecting', 'closed' {code, ended}, 'retrying' {delay, error}, 'logged_out'.
    this.onMessage = () => {};
    this.onState = () => {};
  }

  // start logs in unless a token is stored, and connects.
  start() {
    this.running = true;
    this.retries = 0;
    this.open();
  }

  // resume connects at once if the client is waiting to reconnect.
  resume() {
    if (this.running && !this.task && !this.opening) {
      this.retries = 0;
      this.open();
    }
  }

  // send sends a message on the socket; false if it is not open.
  send(msg) {
    if (!this.ready) return false;
    this.task.send({ data: JSON.stringify(msg) });
    return true;
  }

  // logout ends the session on the server (its sockets close with 4001) and forgets it.
  logout() {
    this.stop();
    const done = this.request('POST', '/logout').catch(() => {}); // the token is dropped anyway
    this.forget();
    return done.then(() => this.onState('logged_out'));
  }

  // stop closes the socket and stops reconnecting, until the next start.
  stop() {
    this.running = false;
    clearTimeout(this.timer);
    const task = this.task;
    this.task = null;
    this.ready = false;
    if (task) task.close({ code: 1000 });
  }

  // open logs in if needed and connects; if login fails, it tries again later.
  open() {
    if (!this.running || this.task || this.opening) return;
    clearTimeout(this.timer);
    this.timer = 0;
    this.opening = true;
    this.onState('connecting');
    const loggedIn = this.token ? Promise.resolve() : this.login();
    loggedIn.then(() => {
      this.opening = false;
      this.connect();
    }, (err) => {
      this.opening = false;
      this.retry(err);
    });
  }

  // login gets a code from wx.login and exchanges it for a token at POST /login.
  login() {
    return new Promise((resolve, reject) => {
      wx.login({ success: resolve, fail: (e) => reject(new Error('wx.login: ' + e.errMsg)) });
    }).then((res) => this.request('POST', '/login', { code: res.code }, false))
      .then((r) => {
        if (r.statusCode !== 200 || !r.data || !r.data.token) {
          throw new Error('login: ' + ((r.data && r.data.message) || 'status ' + r.statusCode));
        }
        this.token = r.data.token;
        wx.setStorageSync(TOKEN, this.token);
      });
  }

  // request calls the server's HTTP API, with the token unless auth is false.
  request(method, path, data, auth = true) {
    return new Promise((resolve, reject) => {
      wx.request({
        url: config.server + path,
        method,
        data,
        header: auth && this.token ? { Authorization: 'Bearer ' + this.token } : {},
        success: resolve,
        fail: (e) => reject(new Error(e.errMsg)),
      });
    });
  }

  connect() {
    if (!this.running || this.task) return;
    const url = config.server.replace(/^http/, 'ws') + '/ws';
    const header = { Authorization: 'Bearer ' + this.token };
    if (this.recovery) header['X-Hub-Recover'] = JSON.stringify(this.recovery);
    const task = wx.connectSocket({ url, header });
    this.task = task;
    this.ready = false;
    task.onMessage((e) => {
      if (this.task !== task) return;
      const msg = this.unwrap(JSON.parse(e.data));
      if (!msg) return;
      if (msg.type === 'welcome') {
        this.ready = true;
        this.retries = 0;
      }
      this.onMessage(msg);
    });
    // A socket that fails to connect may report an error and no close: either ends it.
    const ended = (code) => {
      if (this.task !== task) return;
      this.task = null;
      this.ready = false;
      this.closed(code);
    };
    task.onError(() => {
      ended(1006);
      task.close({ code: 1000 }); // in case the error left it open
    });
    task.onClose((e) => ended(e.code));
  }

  // unwrap reads what the server's Hub writes: first its welcome, with the socket's
  // recovery state, then each message in an envelope {"topic","pos","msg"}. It returns
  // the game's message, or null for none or one the client has already read.
  unwrap(data) {
    if (data.recovery) {
      this.recovery = { id: data.recovery.id, pos: Object.assign({}, data.recovery.pos) };
      this.recovered = data.recovery.recovered;
      return null;
    }
    if (this.recovery && data.topic) this.recovery.pos[data.topic] = data.pos;
    const msg = data.msg;
    if (!msg) return null; // a room joined: where its stream stands
    if (msg.seq) {
      if (msg.match === this.seen.match && msg.seq <= this.seen.seq) return null;
      this.seen = { match: msg.match, seq: msg.seq };
    }
    return msg;
  }

  closed(code) {
    const ended = ENDED[code] || '';
    this.onState('closed', { code, ended });
    if (!this.running) return;
    if (ended) { // the session is over: a new login, not a reconnect
      this.forget();
      this.open();
      return;
    }
    // 1006 may also be an upgrade the server refused (401): ask before trying again.
    this.request('GET', '/api/me').then((r) => {
      if (this.task || this.opening) return; // resume has connected meanwhile
      if (r.statusCode === 401) {
        this.forget();
        this.open();
      } else {
        this.retry();
      }
    }, (err) => this.retry(err));
  }

  // retry opens the connection again after the next delay: 1 s, 2 s, 4 s ... 30 s, less
  // up to a fifth at random, so that the clients of a restarted server do not all come
  // back at once.
  retry(error) {
    if (!this.running || this.task || this.opening) return;
    clearTimeout(this.timer);
    const full = Math.min(RETRY_MAX, RETRY_FIRST * 2 ** this.retries);
    const delay = Math.round(full * (1 - Math.random() / 5));
    this.retries++;
    this.onState('retrying', { delay, error });
    this.timer = setTimeout(() => this.open(), delay);
  }

  forget() {
    this.token = '';
    this.recovery = null; // it belongs to the session

    wx.removeStorageSync(TOKEN);
  }
}

module.exports = { Client };
