// The web client of the rps-game sample. It logs in as a mini program would, with a
// code from the fake WeChat server (development mode), keeps the token in localStorage
// (so every tab shares one session, and is one player), and plays over one WebSocket.
'use strict';

const $ = (id) => document.getElementById(id);
const NAMES = { rock: 'rock', paper: 'paper', scissors: 'scissors', '': 'no move' };
const CLOSED = { // wsauth close codes: the session ended under the open socket
  4001: 'You were logged out in another tab or on another device.',
  4002: 'You logged in somewhere else, so this page was logged out.',
  4003: 'Your login has expired.',
};
const LEFT = { // why the opponent is gone (opponent_left's reason)
  left: 'left the match', disconnected: 'did not come back in time', logged_out: 'logged out',
  revoked: 'was logged out', expired: 'was logged out',
};
const HINT_AFTER = 6000; // ms alone in the queue before the page suggests a bot

let onlineId = null; // polls the online count while the lobby shows
let token = localStorage.getItem('rps.token');
let ws = null;
let me = '';
let opponent = '';
let inMatch = false;
let loggingOut = false;
let rounds = 3;
let round = 0;
let moveTimeout = 20;
let deadline = 0;
let timerId = 0;
let hintId = 0;
let awayId = 0; // the opponent's grace period countdown
// The Hub's recovery state of the last socket, {id, pos}: its id (from the Hub's
// welcome) and the position of the last message read in each of its streams. After a
// dropped connection the next socket offers it (a "recover." subprotocol) and is given
// what this one missed, on whichever server it reaches.
let recovery = null;
// A match numbers what it tells of its course (matched, round) and tells it all again to
// a socket that takes the seat back: the last one read, to skip what the page has.
let seen = { match: '', seq: 0 };

function status(text) { $('status').textContent = text; }

// hand returns an inline SVG of a hand: no emoji font needed.
function hand(choice) {
  const id = choice ? 'hand-' + choice : 'hand-none';
  return '<svg role="img" aria-label="' + NAMES[choice || ''] + '"><use href="#' + id + '"/></svg>';
}

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
    // With real WeChat (-appid) there is no fake to log in through: see "How it works".
    notice('This game is played from its WeChat mini program.', false);
    return false;
  }
  const { code, openid: id } = await c.json();
  localStorage.setItem('rps.openid', id);
  const r = await fetch('/login', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ code }) });
  const body = await r.json().catch(() => ({}));
  if (!r.ok) { notice('Could not log in: ' + (body.message || r.status), true); return false; }
  token = body.token;
  localStorage.setItem('rps.token', token);
  return true;
}

// loadMe shows the session: GET /api/me reads it from the store on every request.
async function loadMe() {
  if (!token) return false;
  const r = await api('GET', '/api/me');
  if (r.status === 401) return false;
  if (!r.ok) throw new Error('the server answered ' + r.status);
  showRecord(r.data);
  $('openid').textContent = r.data.openid;
  setName(r.data.nickname);
  return true;
}

function setName(name) {
  me = name;
  $('my-name').textContent = name;
  if (document.activeElement !== $('nickname')) $('nickname').value = name;
}

function showRecord(rec) {
  $('wins').textContent = rec.wins;
  $('losses').textContent = rec.losses;
  $('draws').textContent = rec.draws;
}

// loadLeaderboard shows the top players, and hides the table where the server has none.
async function loadLeaderboard() {
  let players = null;
  try {
    const r = await api('GET', '/api/leaderboard');
    if (r.ok && r.data && Array.isArray(r.data.players)) players = r.data.players;
  } catch (err) { /* no leaderboard */ }
  $('leaderboard').hidden = !players || players.length === 0;
  if (!players) return;
  const body = $('leaders');
  body.textContent = '';
  players.slice(0, 10).forEach((p, i) => {
    const tr = document.createElement('tr');
    if (p.me) tr.className = 'me'; // by openid: two players may share a nickname
    for (const v of [i + 1, p.nickname, p.wins + '–' + p.losses + '–' + p.draws, p.bestStreak ?? '']) {
      const td = document.createElement('td');
      td.textContent = v;
      tr.appendChild(td);
    }
    body.appendChild(tr);
  });
}

// loadOnline shows how many players have the game open, on every instance.
async function loadOnline() {
  try {
    const r = await api('GET', '/api/online');
    if (r.ok && r.data && typeof r.data.players === 'number') {
      $('online').textContent = r.data.players === 1 ? 'You are the only player online.' : r.data.players + ' players online';
      $('online').hidden = false;
    }
  } catch (err) { /* no count */ }
}

async function boot() {
  $('notice').hidden = true;
  token = localStorage.getItem('rps.token'); // another tab may have logged in again
  if (!(await loadMe())) {
    if (!(await login()) || !(await loadMe())) return;
  }
  $('me').hidden = false;
  $('lobby').hidden = false;
  $('logout').hidden = false;
  loadLeaderboard();
  connect();
  if (!onlineId) onlineId = setInterval(() => { if (!$('lobby').hidden) loadOnline(); }, 10000);
}

function connect() {
  const url = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws';
  // The browser way to authenticate a socket: the token as a subprotocol. The server
  // answers with "mpsession" only. Mini programs send an Authorization header instead.
  const protocols = ['mpsession', token];
  if (recovery) protocols.push('recover.' + base64url(JSON.stringify(recovery)));
  const sock = new WebSocket(url, protocols);
  ws = sock;
  status('Connecting…');
  sock.onmessage = (e) => {
    const m = unwrap(JSON.parse(e.data));
    if (m && ws === sock) handle(m);
  };
  sock.onclose = async (e) => {
    if (ws !== sock) return;
    ws = null;
    if (CLOSED[e.code]) { // log in again, rather than reconnect with a dead token
      if (inMatch) endMatch('lose', 'You left the match: it counts as a loss.');
      idle();
      forget();
      notice(loggingOut ? 'You logged out.' : CLOSED[e.code], true);
      loggingOut = false;
      return;
    }
    // 1006 may be a refused upgrade (401): check the session before trying again.
    let live = true;
    try { live = await loadMe(); } catch (err) { /* the server is down: try again */ }
    if (!live) { forget(); notice('You have been logged out.', true); return; }
    // A match waits for a dropped player (the server's grace period, 15 s): the new
    // socket, on whichever instance, takes the seat back and gets "resumed".
    if (inMatch) {
      stopTimer();
      enableMoves(false);
      status('Connection lost; reconnecting: your match waits for you…');
    } else {
      idle();
      status('Connection lost; reconnecting…');
    }
    setTimeout(() => { if (!ws && token) connect(); }, inMatch ? 500 : 2000);
  };
}

// unwrap reads what the server's Hub writes: first its welcome, with the socket's
// recovery state, then each message in an envelope {"topic","pos","msg"}. It returns the
// game's message, or null for none or one the page has already read.
function unwrap(data) {
  if (data.recovery) {
    recovery = { id: data.recovery.id, pos: Object.assign({}, data.recovery.pos) };
    return null;
  }
  if (recovery && data.topic) recovery.pos[data.topic] = data.pos;
  const m = data.msg;
  if (!m) return null; // a room joined: where its stream stands
  if (m.seq) {
    if (m.match === seen.match && m.seq <= seen.seq) return null;
    seen = { match: m.match, seq: m.seq };
  }
  return m;
}

function base64url(text) {
  const bytes = new TextEncoder().encode(text);
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

// forget drops the token, unless another tab has already logged in again.
function forget() {
  recovery = null; // it belongs to the session
  if (localStorage.getItem('rps.token') === token) localStorage.removeItem('rps.token');
  token = null;
  $('openid').textContent = ''; // "How it works" shows no one's openid once logged out
}

function send(msg) { if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(msg)); }

function handle(m) {
  switch (m.type) {
    case 'welcome':
      showRecord(m.record);
      setName(m.nickname);
      status('Hi ' + m.nickname + '! Pick an opponent.');
      loadOnline(); // this socket counts now
      break;
    case 'queued':
      showLobby();
      $('leave').hidden = false;
      // Waiting for a person, one may still change one's mind and play a bot.
      $('play').disabled = m.opponent !== 'bot';
      if (m.opponent !== 'bot') $('play').textContent = 'Looking…';
      $('play-bot').disabled = m.opponent === 'bot';
      clearHint();
      if (m.opponent === 'bot') {
        status('Calling a bot…');
      } else {
        status('Waiting for an opponent…');
        hintId = setTimeout(() => { $('queue-hint').hidden = false; }, HINT_AFTER);
      }
      break;
    case 'matched':
      inMatch = true;
      clearHint();
      opponent = m.opponent.nickname;
      $('lobby').hidden = true;
      $('match').hidden = false;
      $('outcome').hidden = true;
      $('moves').hidden = false;
      $('opponent').textContent = opponent;
      $('them-caption').textContent = opponent;
      $('bot-badge').hidden = !m.opponent.bot;
      $('rounds').textContent = '';
      $('outcome-text').textContent = '';
      delete $('outcome-text').dataset.result;
      $('score-you').textContent = '0';
      $('score-them').textContent = '0';
      reveal(null);
      rounds = m.rounds;
      moveTimeout = m.moveTimeout;
      startRound(1);
      break;
    case 'resumed': // back in the match after a dropped connection, maybe on another server
      if (!inMatch) { // a new page: rebuild the match panel
        handle({ type: 'matched', opponent: m.opponent, rounds: m.rounds, moveTimeout: m.moveTimeout });
      }
      inMatch = true;
      opponent = m.opponent.nickname;
      rounds = m.rounds;
      moveTimeout = m.moveTimeout;
      $('score-you').textContent = m.score.you;
      $('score-them').textContent = m.score.them;
      const done = m.round || 0; // rounds played; the server leaves it out before the first
      startRound(done + 1);
      if (m.moved) { enableMoves(false); status('Back in the match. You have moved; waiting for ' + opponent + '…'); }
      else status('Back in the match. Round ' + (done + 1) + ': make your move.');
      if (m.away) stopTimer(); // the round waits for the opponent too
      away(m.away);
      break;
    case 'resume_failed': { // over while this player was away: forfeited, if the grace period ran out
      const lost = m.record && m.record.losses > +$('losses').textContent;
      if (m.record) showRecord(m.record);
      if (inMatch) {
        if (lost) endMatch('lose', 'You did not come back in time: you lose by forfeit.');
        else endMatch('abandoned', 'The match ended while you were away.');
      }
      loadLeaderboard();
      break;
    }
    case 'opponent_away':
      stopTimer(); // the round waits for them
      away(true, m.grace);
      status(opponent + ' lost the connection. If they are not back in ' + m.grace + ' s, you win by forfeit.');
      break;
    case 'opponent_back':
      away(false);
      deadline = Date.now() + moveTimeout * 1000; // the round starts over for both
      stopTimer();
      tick();
      timerId = setInterval(tick, 250);
      status(opponent + ' is back. ' + (you() ? 'Waiting for their move…' : 'Your move!'));
      break;
    case 'opponent_moved':
      status(you() ? opponent + ' has chosen too…' : opponent + ' has chosen. Your move!');
      break;
    case 'round': {
      reveal(m);
      const li = document.createElement('li');
      li.className = m.result;
      li.innerHTML = hand(m.you) + '<span>' + m.round + '</span>' + hand(m.them);
      li.setAttribute('aria-label', 'Round ' + m.round + ': ' + NAMES[m.you] + ' against ' + NAMES[m.them] + ', ' +
        { win: 'won', lose: 'lost', draw: 'drawn' }[m.result]);
      $('rounds').appendChild(li);
      $('score-you').textContent = m.score.you;
      $('score-them').textContent = m.score.them;
      const over = m.round >= rounds || m.score.you >= 2 || m.score.them >= 2;
      if (!over) startRound(m.round + 1);
      else { stopTimer(); enableMoves(false); }
      break;
    }
    case 'match_over':
      if (m.forfeit) { // this player left the match
        if (m.record) showRecord(m.record);
        if (inMatch) endMatch('lose', 'You left the match: it counts as a loss.');
        loadLeaderboard();
        break;
      }
      endMatch(m.result, { win: 'You win the match ' + m.score.you + '–' + m.score.them + '!',
        lose: 'You lose the match ' + m.score.you + '–' + m.score.them + '.',
        draw: 'A draw, ' + m.score.you + '–' + m.score.them + '.' }[m.result]);
      if (m.record) showRecord(m.record);
      loadMe(); // the same numbers, read over HTTP from the live session
      loadLeaderboard();
      break;
    case 'opponent_left':
      if (m.forfeit) {
        endMatch('win', opponent + ' ' + (LEFT[m.reason] || 'left the match') + ': you win by forfeit!');
        if (m.record) showRecord(m.record);
        loadMe();
        loadLeaderboard();
      } else if (m.reason === 'shutdown') {
        endMatch('abandoned', 'The server running the match stopped. The match does not count.');
      } else if (m.reason === 'declined') {
        endMatch('abandoned', opponent + ' stopped waiting as the match began. It does not count.');
      } else { // the result could not be written
        endMatch('abandoned', opponent + ' ' + (LEFT[m.reason] || 'left the match') + '. The match could not be recorded.');
      }
      break;
    case 'left': // out of the queue, as the page already shows
      break;
    case 'error':
      if (m.message === 'your match has started') break; // "Stop waiting" crossed "matched": play it
      status(m.message.startsWith('this server has no bots') ? 'There are no bots on this server.' : '⚠ ' + m.message);
      if (!inMatch) idle();
      break;
  }
}

// you returns the hand picked this round, or ''.
function you() {
  const b = $('moves').querySelector('.picked');
  return b ? b.dataset.choice : '';
}

// reveal shows both hands of a round (m), or two empty slots before the first.
function reveal(m) {
  const mine = $('hand-you'), theirs = $('hand-them');
  mine.className = theirs.className = 'slot';
  if (!m) {
    mine.innerHTML = theirs.innerHTML = hand('');
    mine.dataset.hand = theirs.dataset.hand = '';
    $('round-result').textContent = '';
    $('round-result').className = '';
    return;
  }
  mine.innerHTML = hand(m.you);
  theirs.innerHTML = hand(m.them);
  mine.dataset.hand = m.you;
  theirs.dataset.hand = m.them;
  if (m.result === 'win') mine.classList.add('win'), theirs.classList.add('lose');
  if (m.result === 'lose') theirs.classList.add('win'), mine.classList.add('lose');
  const how = m.result === 'draw' ? (m.you ? 'both ' + NAMES[m.you] : 'no moves') :
    m.result === 'win' ? verb(m.you, m.them) : verb(m.them, m.you);
  $('round-result').textContent = 'Round ' + m.round + ': ' +
    { win: 'you win', lose: opponent + ' wins', draw: 'a draw' }[m.result] + ' (' + how + ')';
  $('round-result').className = m.result;
}

// verb says how winner beat loser.
function verb(winner, loser) {
  if (!loser) return 'no move in time';
  return { rock: 'rock blunts scissors', paper: 'paper covers rock', scissors: 'scissors cut paper' }[winner];
}

function startRound(n) {
  round = n;
  $('round-label').textContent = 'Round ' + n + ' of ' + rounds;
  status('Round ' + n + ': make your move.'); // nothing said in the last round carries over
  for (const b of $('moves').children) b.classList.remove('picked');
  enableMoves(true);
  deadline = Date.now() + moveTimeout * 1000;
  stopTimer();
  tick();
  timerId = setInterval(tick, 250);
}

function enableMoves(on) { for (const b of $('moves').children) b.disabled = !on; }

function tick() {
  if (awayId) return; // the opponent's countdown has the place: the move timer waits
  const left = Math.max(0, Math.ceil((deadline - Date.now()) / 1000));
  $('timer').textContent = left + ' s left';
  $('timer').classList.toggle('low', left <= 5);
  if (left === 0) { stopTimer(); enableMoves(false); }
}

function stopTimer() { clearInterval(timerId); timerId = 0; $('timer').textContent = ''; }

// away shows whether the opponent is reconnecting, and counts down the seconds they
// have left to come back, in the move timer's place (that timer waits meanwhile).
function away(on, grace) {
  $('away-badge').hidden = !on;
  clearInterval(awayId);
  awayId = 0;
  if (!on || !grace) return;
  const until = Date.now() + grace * 1000;
  const show = () => {
    const left = Math.max(0, Math.ceil((until - Date.now()) / 1000));
    $('timer').textContent = left + ' s to come back';
    $('timer').classList.toggle('low', left <= 5);
  };
  show();
  awayId = setInterval(show, 250);
}

function endMatch(result, text) {
  inMatch = false;
  away(false);
  stopTimer();
  enableMoves(false);
  $('moves').hidden = true;
  $('outcome').hidden = false;
  $('outcome-text').textContent = text;
  $('outcome-text').className = result;
  $('outcome-text').dataset.result = result;
  idle();
  status(result === 'abandoned' ? 'Play again?' : 'Match over. Play again?');
}

function idle() {
  clearHint();
  $('leave').hidden = true;
  $('play').textContent = 'Play someone';
  for (const id of ['play', 'play-bot', 'again', 'again-bot']) $(id).disabled = false;
}

function clearHint() { clearTimeout(hintId); hintId = 0; $('queue-hint').hidden = true; }

// showLobby brings the Play panel back after a match.
function showLobby() {
  $('match').hidden = true;
  $('lobby').hidden = false;
}

function notice(text, canRelogin) {
  $('notice-text').textContent = text;
  $('relogin').hidden = !canRelogin;
  $('notice').hidden = false;
  for (const id of ['lobby', 'match', 'me', 'leaderboard', 'logout']) $(id).hidden = true;
  status('');
}

function queue(opponent) {
  send(opponent ? { type: 'queue', opponent } : { type: 'queue' });
}

$('play').onclick = $('again').onclick = () => queue();
$('play-bot').onclick = $('again-bot').onclick = $('hint-bot').onclick = () => queue('bot');
// "from":"queue": should the match start meanwhile, the player plays it rather than
// forfeit a match they have not seen.
$('leave').onclick = () => { send({ type: 'leave', from: 'queue' }); idle(); status('Pick an opponent.'); };
for (const b of $('moves').children) {
  b.onclick = () => {
    send({ type: 'move', choice: b.dataset.choice });
    enableMoves(false);
    b.classList.add('picked');
    status('You chose ' + b.dataset.choice + '. Waiting for ' + opponent + '…');
  };
}
$('save-nickname').onclick = async () => {
  const r = await api('POST', '/api/nickname', { nickname: $('nickname').value });
  if (r.ok) setName(r.data.nickname);
  status(r.ok ? 'You are now ' + r.data.nickname + '.' : '⚠ ' + ((r.data && r.data.message) || 'Could not rename you.'));
};
$('nickname').onkeydown = (e) => { if (e.key === 'Enter') $('save-nickname').click(); };
$('logout').onclick = async () => {
  loggingOut = true;
  await api('POST', '/logout'); // every tab's socket closes with 4001
  forget();
};
$('relogin').onclick = boot;

// Tabs of one browser share the login, so they are one player: say so plainly when
// another tab has the game open.
if ('BroadcastChannel' in window) {
  const note = $('tabs-note'), usual = note.textContent;
  const tabs = new BroadcastChannel('rps.tabs');
  let hidden = false; // this tab is closing, or in the back-forward cache
  tabs.onmessage = (e) => {
    if (hidden) return;
    if (e.data === 'bye') { // that tab closed: are others still open?
      note.classList.remove('alert');
      note.textContent = usual;
      tabs.postMessage('hello');
      return;
    }
    if (e.data === 'hello') tabs.postMessage('here');
    note.classList.add('alert');
    note.textContent = 'This game is open in another tab too. Both tabs are the same player, so they ' +
      'cannot play each other: to play yourself, open a private window or another browser.';
  };
  tabs.postMessage('hello');
  addEventListener('pagehide', () => { hidden = true; tabs.postMessage('bye'); });
  addEventListener('pageshow', (e) => { if (e.persisted) { hidden = false; tabs.postMessage('hello'); } });
}

boot().catch((e) => notice('Something went wrong (' + e.message + '). Try again.', true));
