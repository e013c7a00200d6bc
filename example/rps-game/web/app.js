// The web client of the rps-game sample. It logs in as a mini program would, with a
// code from the fake WeChat server (development mode), keeps the token in localStorage
// (so every tab shares one session, and is one player), and plays over one WebSocket.
// Its words are in i18n.js: texts are named by key, and t or say shows them.
'use strict';

const $ = (id) => document.getElementById(id);
const CLOSED = [4001, 4002, 4003]; // wsauth close codes: the session ended under the open socket
const LEFT = ['left', 'disconnected', 'logged_out', 'revoked', 'expired']; // opponent_left's reasons, with a text each
const HINT_AFTER = 6000; // ms alone in the queue before the page suggests a bot
const COUNT_STEP = 300; // ms for each of "3", "2", "1" before a round's hands show
// The sounds, made by an oscillator: notes of [frequency in Hz, start and length in s].
const TONES = {
  tick: [[587, 0, 0.07]],
  last: [[880, 0, 0.09]],
  win: [[659, 0, 0.1], [988, 0.1, 0.22]],
  lose: [[392, 0, 0.12], [262, 0.12, 0.28]],
  draw: [[523, 0, 0.16]],
  offer: [[784, 0, 0.08], [784, 0.14, 0.08]],
};

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
// A round's result is revealed after a countdown. Meanwhile the messages that come wait
// in held, {m, at} with the time each came, and are handled after it, in order.
let revealing = null; // the reveal under way: {timer, finish}
let held = [];
let hurry = false; // reveal without a countdown: the socket closed, and the page catches up
// A new socket is told the course of the match it takes back (matched, then each round
// played) before "resumed": those rounds show at once, without a countdown.
let catchingUp = false;
let rematchState = ''; // '', 'can', 'wait' or 'offered': see rematch
let rematchId = 0; // the countdown of a rematch asked or offered
let sound = localStorage.getItem('rps.sound') === 'on'; // off unless the player switched it on
let audio = null; // the AudioContext, made on a click once sound is on (autoplay policy)

// status shows a text (key and params) in the status line, or clears it.
function status(key, params) {
  if (key) say($('status'), key, params);
  else unsay($('status'));
}

// hand returns an inline SVG of a hand: no emoji font needed.
function hand(choice) {
  const id = choice ? 'hand-' + choice : 'hand-none';
  const name = 'hand.' + (choice || 'none');
  return '<svg role="img" data-i18n-label="' + name + '" aria-label="' + t(name) + '"><use href="#' + id + '"/></svg>';
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
    notice('notice.wechat', null, false);
    return false;
  }
  const { code, openid: id } = await c.json();
  localStorage.setItem('rps.openid', id);
  const r = await fetch('/login', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ code }) });
  const body = await r.json().catch(() => ({}));
  if (!r.ok) { notice('notice.loginFailed', { why: body.message ? serverText(body.message) : r.status }, true); return false; }
  token = body.token;
  localStorage.setItem('rps.token', token);
  return true;
}

// loadMe shows the session: GET /api/me reads it from the store on every request.
async function loadMe() {
  if (!token) return false;
  const r = await api('GET', '/api/me');
  if (r.status === 401) return false;
  if (!r.ok) throw new Error('HTTP ' + r.status);
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
      say($('online'), r.data.players === 1 ? 'online.alone' : 'online.many', { n: r.data.players });
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
  status('status.connecting');
  sock.onmessage = (e) => {
    const m = unwrap(JSON.parse(e.data));
    if (m && ws === sock) receive(m);
  };
  sock.onclose = async (e) => {
    if (ws !== sock) return;
    ws = null;
    settle(); // what the page shows next follows all it has read
    if (CLOSED.includes(e.code)) { // log in again, rather than reconnect with a dead token
      if (inMatch) endMatch('lose', 'outcome.youLeft');
      idle();
      forget();
      notice(loggingOut ? 'notice.loggedOut' : 'closed.' + e.code, null, true);
      loggingOut = false;
      return;
    }
    // 1006 may be a refused upgrade (401): check the session before trying again.
    let live = true;
    try { live = await loadMe(); } catch (err) { /* the server is down: try again */ }
    if (!live) { forget(); notice('notice.sessionGone', null, true); return; }
    // A match waits for a dropped player (the server's grace period, 15 s): the new
    // socket, on whichever instance, takes the seat back and gets "resumed".
    if (inMatch) {
      stopTimer();
      enableMoves(false);
      status('status.lostMatch');
    } else {
      idle();
      status('status.lost');
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

function send(msg) {
  catchingUp = false; // what comes next answers the player
  if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(msg));
}

// receive handles a message now, or after the reveal under way.
function receive(m) {
  if (revealing) held.push({ m, at: Date.now() });
  else handle(m, Date.now());
}

// release handles the messages held during a reveal, until one starts another reveal.
function release() {
  while (held.length && !revealing) {
    const h = held.shift();
    handle(h.m, h.at);
  }
}

// settle ends the reveal under way at once, and handles the messages held meanwhile
// without a countdown.
function settle() {
  hurry = true;
  while (revealing) revealing.finish();
  hurry = false;
}

// handle acts on a message of the server's, which came at the time at (ms).
function handle(m, at) {
  switch (m.type) {
    case 'welcome':
      catchingUp = true;
      rematch(''); // the server forgets the last match of a socket that closed
      showRecord(m.record);
      setName(m.nickname);
      status('status.hi', { name: m.nickname });
      loadOnline(); // this socket counts now
      break;
    case 'queued':
      catchingUp = false;
      showLobby();
      $('leave').hidden = false;
      // Waiting for a person, one may still change one's mind and play a bot.
      $('play').disabled = m.opponent !== 'bot';
      if (m.opponent !== 'bot') say($('play'), 'lobby.looking');
      $('play-bot').disabled = m.opponent === 'bot';
      clearHint();
      if (m.opponent === 'bot') {
        status('status.callingBot');
      } else {
        status('status.waiting');
        hintId = setTimeout(() => { $('queue-hint').hidden = false; }, HINT_AFTER);
      }
      break;
    case 'matched':
      inMatch = true;
      clearHint();
      rematch('');
      opponent = m.opponent.nickname;
      $('lobby').hidden = true;
      $('match').hidden = false;
      $('outcome').hidden = true;
      $('moves').hidden = false;
      $('opponent').textContent = opponent;
      $('them-caption').textContent = opponent;
      $('bot-badge').hidden = !m.opponent.bot;
      $('rounds').textContent = '';
      unsay($('outcome-text'));
      delete $('outcome-text').dataset.result;
      score(0, 0);
      reveal(null);
      rounds = m.rounds;
      moveTimeout = m.moveTimeout;
      startRound(1, at);
      break;
    case 'resumed': // back in the match after a dropped connection, maybe on another server
      catchingUp = false;
      if (!inMatch) { // a new page: rebuild the match panel
        handle({ type: 'matched', opponent: m.opponent, rounds: m.rounds, moveTimeout: m.moveTimeout }, at);
      }
      inMatch = true;
      opponent = m.opponent.nickname;
      rounds = m.rounds;
      moveTimeout = m.moveTimeout;
      score(m.score.you, m.score.them);
      const done = m.round || 0; // rounds played; the server leaves it out before the first
      startRound(done + 1, at);
      if (m.moved) { enableMoves(false); status('status.resumedMoved', { name: opponent }); }
      else status('status.resumedRound', { n: done + 1 });
      if (m.away) stopTimer(); // the round waits for the opponent too
      away(m.away);
      break;
    case 'resume_failed': { // over while this player was away: forfeited, if the grace period ran out
      catchingUp = false;
      const lost = m.record && m.record.losses > +$('losses').textContent;
      if (m.record) showRecord(m.record);
      if (inMatch) {
        if (lost) endMatch('lose', 'outcome.youLate');
        else endMatch('abandoned', 'outcome.awayOver');
      }
      loadLeaderboard();
      break;
    }
    case 'opponent_away':
      stopTimer(); // the round waits for them
      away(true, m.grace);
      status('status.away', { name: opponent, s: m.grace });
      break;
    case 'opponent_back':
      away(false);
      deadline = Date.now() + moveTimeout * 1000; // the round starts over for both
      stopTimer();
      tick();
      timerId = setInterval(tick, 250);
      status(you() ? 'status.back' : 'status.backYourMove', { name: opponent });
      break;
    case 'opponent_moved':
      status(you() ? 'status.theyChoseToo' : 'status.theyChose', { name: opponent });
      break;
    case 'round':
      // No countdown for rounds told again, for a player who wants no motion, nor in a
      // tab in the background, whose timers run late.
      if (catchingUp || hurry || document.hidden || matchMedia('(prefers-reduced-motion: reduce)').matches) showRound(m, at);
      else countdown(m, at);
      break;
    case 'match_over':
      if (m.forfeit) { // this player left the match
        if (m.record) showRecord(m.record);
        if (inMatch) endMatch('lose', 'outcome.youLeft');
        loadLeaderboard();
        break;
      }
      endMatch(m.result, 'outcome.' + m.result, { you: m.score.you, them: m.score.them });
      rematch('can');
      if (m.record) showRecord(m.record);
      loadMe(); // the same numbers, read over HTTP from the live session
      loadLeaderboard();
      break;
    case 'opponent_left': {
      const why = text(LEFT.includes(m.reason) ? 'left.' + m.reason : 'left.left');
      if (m.forfeit) {
        endMatch('win', 'outcome.theyLeft', { name: opponent, why });
        if (m.record) showRecord(m.record);
        loadMe();
        loadLeaderboard();
      } else if (m.reason === 'shutdown') {
        endMatch('abandoned', 'outcome.shutdown');
      } else if (m.reason === 'declined') {
        endMatch('abandoned', 'outcome.declined', { name: opponent });
      } else { // the result could not be written
        endMatch('abandoned', 'outcome.unrecorded', { name: opponent, why });
      }
      break;
    }
    case 'rematch_wait': // the player asked the last opponent for a rematch
      rematch('wait', m.opponent.nickname, m.grace);
      break;
    case 'rematch_offered': // the last opponent asks for one
      rematch('offered', m.opponent.nickname, m.grace);
      beep('offer');
      break;
    case 'rematch_off': {
      if (!rematchState) break; // the player has moved on: nothing to say
      const key = m.reason === 'timeout' ? (rematchState === 'wait' ? 'rematch.noAnswer' : 'rematch.expired') :
        m.reason === 'declined' && rematchState === 'wait' ? 'rematch.declined' : 'rematch.gone';
      rematchOff(key);
      break;
    }
    case 'left': // out of the queue, as the page already shows
      break;
    case 'error':
      if (m.message === 'your match has started') break; // "Stop waiting" crossed "matched": play it
      status('status.error', { message: serverText(m.message) });
      if (m.message === 'no match to play again') rematch('');
      if (!inMatch) idle();
      break;
  }
}

// you returns the hand picked this round, or ''.
function you() {
  const b = $('moves').querySelector('.picked');
  return b ? b.dataset.choice : '';
}

// countdown counts "3", "2", "1" with both fists shaking, then shows the round (m).
function countdown(m, at) {
  stopTimer();
  enableMoves(false);
  for (const slot of [$('hand-you'), $('hand-them')]) {
    slot.className = 'slot shaking';
    slot.innerHTML = '<svg aria-hidden="true"><use href="#hand-rock"/></svg>';
    slot.dataset.hand = 'shake';
  }
  unsay($('round-result')); // the last round's would read as this one's
  $('round-result').className = '';
  const count = $('count');
  $('vs').hidden = true;
  count.hidden = false;
  let n = 3;
  const step = () => {
    if (n === 0) {
      revealing.finish();
      return;
    }
    count.textContent = n;
    count.animate([{ scale: 1.6, opacity: 0.3 }, { scale: 1, opacity: 1 }], { duration: 200, easing: 'ease-out' });
    beep(n === 1 ? 'last' : 'tick');
    n--;
    revealing.timer = setTimeout(step, COUNT_STEP);
  };
  revealing = {
    timer: 0,
    finish: () => {
      clearTimeout(revealing.timer);
      revealing = null;
      count.hidden = true;
      count.textContent = '';
      $('vs').hidden = false;
      showRound(m, at);
      release();
    },
  };
  step();
}

// showRound shows a round's result (m): both hands, then the round in the list and the
// score; then the next round starts, its move timer counted from the message's arrival
// (at), when the server's started.
function showRound(m, at) {
  reveal(m);
  if (!catchingUp && !hurry) beep(m.result);
  const li = document.createElement('li');
  li.className = m.result;
  li.innerHTML = hand(m.you) + '<span>' + m.round + '</span>' + hand(m.them);
  say(li, 'rounds.item', { n: m.round, you: text('hand.' + (m.you || 'none')), them: text('hand.' + (m.them || 'none')),
    result: text('rounds.' + m.result) }, 'aria-label');
  $('rounds').appendChild(li);
  score(m.score.you, m.score.them);
  const over = m.round >= rounds || m.score.you >= 2 || m.score.them >= 2;
  if (!over) startRound(m.round + 1, at);
  else { stopTimer(); enableMoves(false); }
}

// score shows the match's score, and fills a dot for each round won.
function score(mine, theirs) {
  $('score-you').textContent = mine;
  $('score-them').textContent = theirs;
  [...$('pips-you').children].forEach((dot, i) => dot.classList.toggle('on', i < mine));
  [...$('pips-them').children].forEach((dot, i) => dot.classList.toggle('on', i < theirs));
}

// reveal shows both hands of a round (m), or two empty slots before the first.
function reveal(m) {
  const mine = $('hand-you'), theirs = $('hand-them');
  mine.className = theirs.className = 'slot';
  if (!m) {
    mine.innerHTML = theirs.innerHTML = hand('');
    mine.dataset.hand = theirs.dataset.hand = '';
    unsay($('round-result'));
    $('round-result').className = '';
    return;
  }
  mine.innerHTML = hand(m.you);
  theirs.innerHTML = hand(m.them);
  mine.dataset.hand = m.you;
  theirs.dataset.hand = m.them;
  if (m.result === 'win') mine.classList.add('win'), theirs.classList.add('lose');
  if (m.result === 'lose') theirs.classList.add('win'), mine.classList.add('lose');
  const how = m.result === 'draw' ? (m.you ? text('how.both', { hand: text('hand.' + m.you) }) : text('how.noMoves')) :
    m.result === 'win' ? beats(m.you, m.them, 'how.late') : beats(m.them, m.you, 'how.lateYou');
  const who = { win: text('round.youWin'), lose: text('round.theyWin', { name: opponent }), draw: text('round.draw') }[m.result];
  say($('round-result'), 'round.result', { n: m.round, who, how });
  $('round-result').className = m.result;
}

// beats says how winner beat loser; late, when the loser made no move in time.
function beats(winner, loser, late) {
  return loser ? text('beats.' + winner) : text(late);
}

function startRound(n, at) {
  round = n;
  say($('round-label'), 'match.round', { n, total: rounds });
  status('status.round', { n }); // nothing said in the last round carries over
  for (const b of $('moves').children) b.classList.remove('picked');
  enableMoves(true);
  deadline = at + moveTimeout * 1000;
  stopTimer();
  tick();
  timerId = setInterval(tick, 250);
}

function enableMoves(on) { for (const b of $('moves').children) b.disabled = !on; }

function tick() {
  if (awayId) return; // the opponent's countdown has the place: the move timer waits
  const left = Math.max(0, Math.ceil((deadline - Date.now()) / 1000));
  say($('timer'), 'timer.left', { s: left });
  $('timer').classList.toggle('low', left <= 5);
  if (left === 0) { stopTimer(); enableMoves(false); }
}

function stopTimer() { clearInterval(timerId); timerId = 0; unsay($('timer')); }

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
    say($('timer'), 'timer.away', { s: left });
    $('timer').classList.toggle('low', left <= 5);
  };
  show();
  awayId = setInterval(show, 250);
}

function endMatch(result, key, params) {
  inMatch = false;
  away(false);
  stopTimer();
  enableMoves(false);
  $('moves').hidden = true;
  $('outcome').hidden = false;
  say($('outcome-text'), key, params);
  $('outcome-text').className = result;
  $('outcome-text').dataset.result = result;
  rematch('');
  idle();
  status(result === 'abandoned' ? 'status.again' : 'status.over');
}

// rematch shows where a rematch with the last opponent (name) stands: '' none, 'can'
// (the button asks for one), 'wait' (asked: the opponent has grace seconds to accept;
// "Play someone" and "Play a bot" still go, and call it off), 'offered' (the opponent
// asks: the button accepts).
function rematch(state, name, grace) {
  rematchState = state;
  clearInterval(rematchId);
  rematchId = 0;
  const button = $('rematch'), note = $('rematch-note');
  button.hidden = !state;
  button.disabled = state === 'wait';
  say(button, state === 'offered' ? 'rematch.accept' : 'rematch.ask');
  note.hidden = state !== 'wait' && state !== 'offered';
  note.classList.toggle('offer', state === 'offered');
  unsay($('rematch-left'));
  if (note.hidden) return;
  say($('rematch-text'), state === 'wait' ? 'rematch.wait' : 'rematch.offered', { name });
  const until = Date.now() + grace * 1000;
  const left = () => {
    const s = Math.max(0, Math.ceil((until - Date.now()) / 1000));
    // An offer the player let run out is over: the server tells only the one who asked.
    if (s === 0 && state === 'offered') rematchOff('rematch.expired');
    else say($('rematch-left'), 'rematch.left', { s });
  };
  rematchId = setInterval(left, 250);
  left();
}

// rematchOff says why there is no rematch (the text of key), with the buttons to play
// someone else.
function rematchOff(key) {
  rematch('');
  say($('rematch-text'), key, { name: opponent });
  $('rematch-note').hidden = false;
}

function idle() {
  clearHint();
  $('leave').hidden = true;
  say($('play'), 'lobby.play');
  for (const id of ['play', 'play-bot', 'again', 'again-bot']) $(id).disabled = false;
}

function clearHint() { clearTimeout(hintId); hintId = 0; $('queue-hint').hidden = true; }

// showLobby brings the Play panel back after a match.
function showLobby() {
  $('match').hidden = true;
  $('lobby').hidden = false;
}

function notice(key, params, canRelogin) {
  say($('notice-text'), key, params);
  $('relogin').hidden = !canRelogin;
  $('notice').hidden = false;
  for (const id of ['lobby', 'match', 'me', 'leaderboard', 'logout']) $(id).hidden = true;
  status('');
}

// queue asks for an opponent, which calls off a rematch asked or offered.
function queue(opponent) {
  rematch('');
  send(opponent ? { type: 'queue', opponent } : { type: 'queue' });
}

// startAudio makes the AudioContext: browsers let a page start audio in a click only.
function startAudio() {
  if (!audio) audio = new (window.AudioContext || window.webkitAudioContext)();
  if (audio.state === 'suspended') audio.resume();
}

// beep plays a tone of TONES, with sound on.
function beep(name) {
  if (!sound || !audio) return;
  const now = audio.currentTime;
  for (const [freq, start, length] of TONES[name]) {
    const osc = audio.createOscillator(), gain = audio.createGain();
    osc.type = 'triangle';
    osc.frequency.value = freq;
    gain.gain.setValueAtTime(0.0001, now + start);
    gain.gain.exponentialRampToValueAtTime(0.25, now + start + 0.01);
    gain.gain.exponentialRampToValueAtTime(0.0001, now + start + length);
    osc.connect(gain).connect(audio.destination);
    osc.start(now + start);
    osc.stop(now + start + length + 0.02);
  }
}

// showSound shows the sound switch: its icon says whether sound is on, its label what
// a click does.
function showSound() {
  $('sound').querySelector('use').setAttribute('href', sound ? '#icon-sound' : '#icon-mute');
  say($('sound'), sound ? 'sound.turnOff' : 'sound.turnOn', null, 'aria-label');
}

$('play').onclick = $('again').onclick = () => queue();
$('play-bot').onclick = $('again-bot').onclick = $('hint-bot').onclick = () => queue('bot');
// Asks the last opponent for a rematch, or accepts theirs.
$('rematch').onclick = () => { $('rematch').disabled = true; send({ type: 'rematch' }); };
// "from":"queue": should the match start meanwhile, the player plays it rather than
// forfeit a match they have not seen.
$('leave').onclick = () => { send({ type: 'leave', from: 'queue' }); idle(); status('status.pick'); };
for (const b of $('moves').children) {
  b.onclick = () => {
    send({ type: 'move', choice: b.dataset.choice });
    enableMoves(false);
    b.classList.add('picked');
    status('status.chose', { hand: text('hand.' + b.dataset.choice), name: opponent });
  };
}
$('save-nickname').onclick = async () => {
  const r = await api('POST', '/api/nickname', { nickname: $('nickname').value });
  if (r.ok) {
    setName(r.data.nickname);
    status('status.renamed', { name: r.data.nickname });
  } else {
    status('status.error', { message: r.data && r.data.message ? serverText(r.data.message) : text('err.rename') });
  }
};
$('nickname').onkeydown = (e) => { if (e.key === 'Enter') $('save-nickname').click(); };
$('logout').onclick = async () => {
  loggingOut = true;
  await api('POST', '/logout'); // every tab's socket closes with 4001
  forget();
};
$('relogin').onclick = boot;
$('lang').onclick = () => {
  lang = lang === 'zh' ? 'en' : 'zh';
  localStorage.setItem('rps.lang', lang);
  translate();
};
$('sound').onclick = () => {
  sound = !sound;
  localStorage.setItem('rps.sound', sound ? 'on' : 'off');
  if (sound) startAudio();
  showSound();
  beep('last'); // the player hears that sound is on
};
// Sound left on last time plays from the player's first click on: no page may start
// audio before one.
if (sound) addEventListener('click', () => { if (sound) startAudio(); }, { once: true });

// Tabs of one browser share the login, so they are one player: say so plainly when
// another tab has the game open.
if ('BroadcastChannel' in window) {
  const note = $('tabs-note');
  const tabs = new BroadcastChannel('rps.tabs');
  let hidden = false; // this tab is closing, or in the back-forward cache
  tabs.onmessage = (e) => {
    if (hidden) return;
    if (e.data === 'bye') { // that tab closed: are others still open?
      note.classList.remove('alert');
      say(note, 'tabs.note');
      tabs.postMessage('hello');
      return;
    }
    if (e.data === 'hello') tabs.postMessage('here');
    note.classList.add('alert');
    say(note, 'tabs.other');
  };
  tabs.postMessage('hello');
  addEventListener('pagehide', () => { hidden = true; tabs.postMessage('bye'); });
  addEventListener('pageshow', (e) => { if (e.persisted) { hidden = false; tabs.postMessage('hello'); } });
}

translate();
showSound();
boot().catch((e) => notice('notice.crash', { why: e.message }, true));
