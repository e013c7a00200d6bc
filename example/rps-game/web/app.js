// The web client of the rps-game sample. It logs in as a mini program would, with a
// code from the fake WeChat server (development mode), keeps the token in localStorage
// (so every tab shares one session), and plays over one WebSocket.
'use strict';

const $ = (id) => document.getElementById(id);
const HANDS = { rock: 'rock', paper: 'paper', scissors: 'scissors', '': 'no move' };
const CLOSED = { // wsauth close codes: the session ended under the open socket
  4001: 'You were logged out elsewhere (another tab or device).',
  4002: 'Your session was revoked: you logged in somewhere else.',
  4003: 'Your session expired.',
};

let token = localStorage.getItem('rps.token');
let ws = null;
let inMatch = false;
let loggingOut = false;
let rounds = 3;
let moveTimeout = 20;
let deadline = 0;
let timerId = 0;

function status(text) { $('status').textContent = text; }

async function api(method, path, body) {
  const r = await fetch(path, {
    method,
    headers: { 'Authorization': 'Bearer ' + token, 'Content-Type': 'application/json' },
    body: body ? JSON.stringify(body) : undefined,
  });
  const data = r.status === 204 ? null : await r.json().catch(() => null);
  return { ok: r.ok, status: r.status, data };
}

// login does what a mini program does with wx.login: get a code, send it to /login.
async function login() {
  const openid = localStorage.getItem('rps.openid') || ''; // '' makes the fake WeChat pick a new user
  const c = await fetch('/wxtest/code?openid=' + encodeURIComponent(openid));
  if (!c.ok) {
    notice('This page logs in through the fake WeChat server, which runs only in development mode ' +
      '(no -appid). With real WeChat, players log in from the mini program.', false);
    return false;
  }
  const { code, openid: id } = await c.json();
  localStorage.setItem('rps.openid', id);
  const r = await fetch('/login', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ code }) });
  const body = await r.json();
  if (!r.ok) { notice('Login failed: ' + body.message, true); return false; }
  token = body.token;
  localStorage.setItem('rps.token', token);
  return true;
}

// loadMe shows the session: GET /api/me reads it from the store on every request.
async function loadMe() {
  if (!token) return false;
  const r = await api('GET', '/api/me');
  if (r.status === 401) return false;
  if (!r.ok) throw new Error('GET /api/me: ' + r.status);
  showRecord(r.data);
  $('openid').textContent = r.data.openid;
  if (document.activeElement !== $('nickname')) $('nickname').value = r.data.nickname;
  return true;
}

function showRecord(rec) {
  $('wins').textContent = rec.wins;
  $('losses').textContent = rec.losses;
  $('draws').textContent = rec.draws;
}

async function boot() {
  $('notice').hidden = true;
  token = localStorage.getItem('rps.token'); // another tab may have logged in again
  if (!(await loadMe())) {
    if (!(await login()) || !(await loadMe())) return;
  }
  $('me').hidden = false;
  $('lobby').hidden = false;
  connect();
}

function connect() {
  const url = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws';
  // The browser way to authenticate a socket: the token as a subprotocol. The server
  // answers with "mpsession" only. Mini programs send an Authorization header instead.
  const sock = new WebSocket(url, ['mpsession', token]);
  ws = sock;
  status('Connecting…');
  sock.onmessage = (e) => handle(JSON.parse(e.data));
  sock.onclose = async (e) => {
    if (ws !== sock) return;
    ws = null;
    if (inMatch) endMatch('abandoned', 'Disconnected: the match does not count.');
    idle();
    if (CLOSED[e.code]) { // log in again, rather than reconnect with a dead token
      forget();
      notice(loggingOut ? 'You logged out.' : CLOSED[e.code], true);
      loggingOut = false;
      return;
    }
    // 1006 may be a refused upgrade (401): check the session before trying again.
    let live = true;
    try { live = await loadMe(); } catch (err) { /* the server is down: try again */ }
    if (!live) { forget(); notice('Your session has ended.', true); return; }
    status('Disconnected; reconnecting…');
    setTimeout(() => { if (!ws && token) connect(); }, 2000);
  };
}

// forget drops the token, unless another tab has already logged in again.
function forget() {
  if (localStorage.getItem('rps.token') === token) localStorage.removeItem('rps.token');
  token = null;
}

function send(msg) { if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(msg)); }

function handle(m) {
  switch (m.type) {
    case 'welcome':
      showRecord(m.record);
      status('Connected as ' + m.nickname + '. Pick an opponent.');
      break;
    case 'queued':
      $('leave').hidden = false;
      setPlayButtons(false);
      status(m.opponent === 'bot' ? 'Calling a bot…' : 'Waiting for an opponent…');
      break;
    case 'matched':
      inMatch = true;
      $('match').hidden = false;
      $('opponent').textContent = m.opponent.nickname;
      $('bot-badge').hidden = !m.opponent.bot;
      $('rounds').innerHTML = '';
      $('outcome').textContent = '';
      delete $('outcome').dataset.result;
      $('score-you').textContent = '0';
      $('score-them').textContent = '0';
      status('Matched! Make your move.');
      rounds = m.rounds;
      moveTimeout = m.moveTimeout;
      startRound(1);
      break;
    case 'opponent_moved':
      status('Your opponent has chosen.');
      break;
    case 'round': {
      const li = document.createElement('li');
      li.innerHTML = '<span>Round ' + m.round + ': ' + HANDS[m.you] + ' vs ' + HANDS[m.them] + '</span>' +
        '<span class="' + m.result + '">' + { win: 'won', lose: 'lost', draw: 'drawn' }[m.result] + '</span>';
      $('rounds').appendChild(li);
      $('score-you').textContent = m.score.you;
      $('score-them').textContent = m.score.them;
      const over = m.round >= rounds || m.score.you >= 2 || m.score.them >= 2;
      if (!over) startRound(m.round + 1);
      else stopTimer();
      break;
    }
    case 'match_over':
      endMatch(m.result, { win: 'You win the match ' + m.score.you + '–' + m.score.them + '!',
        lose: 'You lose the match ' + m.score.you + '–' + m.score.them + '.',
        draw: 'A draw, ' + m.score.you + '–' + m.score.them + '.' }[m.result]);
      if (m.record) showRecord(m.record);
      loadMe(); // the same numbers, read over HTTP from the live session
      break;
    case 'opponent_left':
      endMatch('abandoned', 'Your opponent ' + ({ logged_out: 'logged out', revoked: 'was logged out', expired: 'lost their session' }[m.reason] || 'left') +
        '. The match does not count.');
      break;
    case 'error':
      status('⚠ ' + m.message);
      if (!inMatch) idle();
      break;
  }
}

function startRound(n) {
  $('round-label').textContent = 'Round ' + n + ' of ' + rounds;
  for (const b of $('moves').children) { b.disabled = false; b.classList.remove('picked'); }
  deadline = Date.now() + moveTimeout * 1000;
  stopTimer();
  tick();
  timerId = setInterval(tick, 250);
}

function tick() {
  const left = Math.max(0, Math.ceil((deadline - Date.now()) / 1000));
  $('timer').textContent = left + ' s';
  if (left === 0) { stopTimer(); for (const b of $('moves').children) b.disabled = true; }
}

function stopTimer() { clearInterval(timerId); timerId = 0; $('timer').textContent = ''; }

function endMatch(result, text) {
  inMatch = false;
  stopTimer();
  for (const b of $('moves').children) b.disabled = true;
  $('outcome').textContent = text;
  $('outcome').className = result;
  $('outcome').dataset.result = result;
  idle();
  status('Play again?');
}

function idle() {
  $('leave').hidden = true;
  setPlayButtons(true);
}

function setPlayButtons(on) { $('play').disabled = !on; $('play-bot').disabled = !on; }

function notice(text, canRelogin) {
  $('notice-text').textContent = text;
  $('relogin').hidden = !canRelogin;
  $('notice').hidden = false;
  $('lobby').hidden = true;
  $('match').hidden = true;
  $('me').hidden = true;
}

$('play').onclick = () => send({ type: 'queue' });
$('play-bot').onclick = () => send({ type: 'queue', opponent: 'bot' });
$('leave').onclick = () => { send({ type: 'leave' }); idle(); status('You left.'); };
for (const b of $('moves').children) {
  b.onclick = () => {
    send({ type: 'move', choice: b.dataset.choice });
    for (const o of $('moves').children) o.disabled = true;
    b.classList.add('picked');
    status('Waiting for your opponent…');
  };
}
$('save-nickname').onclick = async () => {
  const r = await api('POST', '/api/nickname', { nickname: $('nickname').value });
  status(r.ok ? 'Renamed.' : '⚠ ' + (r.data && r.data.message));
};
$('logout').onclick = async () => {
  loggingOut = true;
  await api('POST', '/logout'); // every tab's socket closes with 4001
  forget();
};
$('relogin').onclick = boot;

boot().catch((e) => notice('Something went wrong: ' + e.message, true));
