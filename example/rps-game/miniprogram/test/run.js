// Plays the mini program under node against a real server, as miniprogram_test.go
// runs it:
//
//	node --experimental-websocket run.js http://127.0.0.1:PORT oMini en
//
// It loads the mini program's own app.js and page with a stub wx (wx.js) whose WeChat is
// in the language LANG, the third argument, and presses the page's buttons as its WXML
// would. In English ("en"), the full run: a best-of-three match against a player (the
// Go test), the leaderboard after it, a rename refused and one accepted, a second match
// the player leaves (a win by forfeit), a dropped connection, a logout on "another
// device" (close 4001), a match against a bot with a dropped connection in the middle,
// and a logout. In Chinese ("zh_CN"), a shorter run alone: the language switch, a match
// against a bot, the leaderboard and a rename, with what the page shows collected to
// check that no English is in it. It prints one JSON object of what it saw, which the Go
// test checks.
'use strict';
const [base, openid, lang] = process.argv.slice(2);
const stub = require('./wx.js')(base, openid, lang);
require('../config.js').server = base; // the one setting a user edits
const i18n = require('../utils/i18n.js');

const out = { steps: {} };
let page;

// until polls cond every 10 ms, and fails after limit ms.
function until(what, cond, limit = 15000) {
  const end = Date.now() + limit;
  return new Promise((resolve, reject) => {
    const poll = () => {
      if (cond()) return resolve();
      if (Date.now() > end) return reject(new Error('timed out waiting for ' + what));
      setTimeout(poll, 10);
    };
    poll();
  });
}

// tap calls a handler as a bindtap with data-* attributes would, and returns what it
// returns.
function tap(handler, dataset = {}) {
  return page[handler]({ type: 'tap', currentTarget: { dataset }, target: { dataset } });
}

// rename types name into the rename box, as its bindinput would, and presses the button.
function rename(name) {
  page.typeName({ type: 'input', detail: { value: name } });
  return tap('rename');
}

// play presses choose(round) in every round until the match is over.
async function play(choose) {
  for (;;) {
    await until('a round to start or the match to end', () => page.data.over || page.data.canMove, 30000);
    if (page.data.over) return;
    tap('move', { choice: choose(page.data.round) });
    const round = page.data.round;
    await until('round ' + round + ' to end', () => page.data.over || page.data.history.length >= round, 30000);
  }
}

const record = () => ({ wins: page.data.wins, losses: page.data.losses, draws: page.data.draws });
const token = () => stub.storage.get('rps.token') || '';

// load starts the app and its page, as the runtime does; prepare, if given, sees the
// page before it loads.
function load(prepare) {
  require('../app.js');
  const app = getApp();
  app.onLaunch();
  app.onShow();
  require('../pages/index/index.js');
  page = stub.loaded.page;
  if (prepare) prepare();
  page.onLoad({});
}

// mine is the leaderboard's line marked as the player's own.
const mine = () => page.data.leaders.find((p) => p.me);

async function english() {
  load();
  out.steps.lang = { lang: page.data.lang, title: stub.log.title };

  // Log in and connect.
  await until('the lobby', () => page.data.view === 'lobby');
  await until('the count of players online', () => page.data.online > 0);
  out.steps.welcome = { status: page.data.status, nickname: page.data.nickname, record: record(),
    logins: stub.log.logins, token: token(), header: stub.log.sockets[0].header, online: page.data.online };

  // A match against the Go test's player, who plays rock every round.
  tap('playSomeone');
  await until('a match', () => page.data.view === 'match');
  out.steps.matched = { opponent: page.data.opponent, bot: page.data.bot, rounds: page.data.rounds };
  await play(() => 'paper');
  out.steps.match = { result: page.data.result, outcome: page.data.outcome, score: [page.data.scoreYou, page.data.scoreThem],
    history: page.data.history, roundText: page.data.roundText, record: record(), status: page.data.status };

  // The leaderboard, read again as the match ends. The Go test's player has this
  // player's nickname: only the line the server marks "me" is this player's.
  await until('the leaderboard after the match', () => mine() && mine().wins === 1);
  out.steps.leaders = { nickname: page.data.nickname, rows: page.data.leaders };

  // A name of 25 characters, which the server refuses and the page says why; then one it
  // takes, which the page shows, and the leaderboard too.
  await rename('x'.repeat(25));
  out.steps.rename = { refused: page.data.status, nicknameAfterRefusal: page.data.nickname };
  await rename('Mini Tester');
  Object.assign(out.steps.rename, { status: page.data.status, nickname: page.data.nickname, input: page.data.nameInput });
  await until('the new name on the leaderboard', () => mine() && mine().nickname === 'Mini Tester');

  // A second match, which the Go test's player leaves after round 1: a win by forfeit.
  tap('playSomeone');
  await until('the second match', () => page.data.view === 'match' && !page.data.over);
  tap('move', { choice: 'scissors' });
  await until('the forfeit', () => page.data.over, 30000);
  out.steps.forfeit = { result: page.data.result, outcome: page.data.outcome, record: record(), status: page.data.status };

  // The network goes: the socket closes with 1006, the next connect fails too, and the
  // client tries again with a longer delay each time, with the same token.
  const before = stub.log.sockets.length;
  stub.net.refuse = 1;
  stub.log.task.drop();
  const dropped = Date.now();
  out.steps.dropped = { view: page.data.view, status: page.data.status };
  await until('a reconnect', () => stub.log.sockets.length === before + 2 && page.data.view !== 'connecting', 20000);
  const [refused, again] = stub.log.sockets.slice(before);
  out.steps.reconnect = { refused: !!refused.refused, firstDelay: refused.at - dropped, secondDelay: again.at - refused.at,
    logins: stub.log.logins, sameToken: token() === out.steps.welcome.token, header: again.header, view: page.data.view };

  // A logout from another device: the server closes the socket with 4001 and the mini
  // program logs in again, to the same record.
  const old = token();
  const r = await stub.request({ url: base + '/logout', method: 'POST', header: { Authorization: 'Bearer ' + old } });
  const sockets = stub.log.sockets.length;
  await until('a new login', () => stub.log.logins === 2 && stub.log.sockets.length > sockets && page.data.status.endsWith('Pick an opponent.'));
  out.steps.relogin = { logoutStatus: r.statusCode, closeCode: stub.log.sockets[sockets - 1].code, logins: stub.log.logins,
    newToken: token() !== '' && token() !== old, oldToken: old, record: record(), status: page.data.status };

  // A match against a bot.
  tap('playBot');
  await until('a match against a bot', () => page.data.view === 'match' && !page.data.over);
  const botName = page.data.opponent;
  // The connection drops in round 1, before any result: the match resumes in round 1
  // (resumed has no round before the first ends: the page once said "Round NaN").
  const k = stub.log.sockets.length;
  stub.log.task.drop();
  await until('the match to resume in round 1', () => stub.log.sockets.length > k && page.data.status.startsWith('Back in the match'), 20000);
  out.steps.resume1 = { round: page.data.round, texts: [page.data.status, page.data.roundLabel, page.data.roundText].join(' | ') };
  // The network goes as round 1 ends: its result is lost on the way, then the socket
  // drops. The page keeps the match on screen; the next socket sends the client's
  // recovery state, is given the round it missed, takes the seat back ("resumed"), and
  // the match goes on from where it was.
  tap('move', { choice: 'rock' });
  stub.net.deaf = true;
  await until('round 1 to end unseen', () => stub.log.lost.some((m) => m.includes('"type":"round"')), 30000);
  const n = stub.log.sockets.length;
  stub.log.task.drop();
  out.steps.resume = { droppedView: page.data.view, droppedStatus: page.data.status, droppedHistory: page.data.history.length,
    lost: stub.log.lost.map((m) => JSON.parse(m).msg.type) };
  await until('the match to resume', () => stub.log.sockets.length > n && page.data.status.startsWith('Back in the match'), 20000);
  Object.assign(out.steps.resume, { view: page.data.view, round: page.data.round, history: page.data.history.length,
    score: [page.data.scoreYou, page.data.scoreThem], recover: stub.log.sockets[n].header['X-Hub-Recover'] || '',
    recovered: getApp().client.recovered, rounds: page.data.history.map((h) => h.round) });
  await play((n) => ['rock', 'paper', 'scissors'][n % 3]);
  out.steps.bot = { opponent: botName, bot: page.data.bot, result: page.data.result, rounds: page.data.history.length,
    record: record() };

  // A rematch: the bot accepts, and the two play again from round 1.
  out.steps.rematch = { offered: page.data.canRematch };
  tap('rematch');
  await until('the rematch', () => page.data.view === 'match' && !page.data.over && page.data.history.length === 0, 20000);
  out.steps.rematch.opponent = page.data.opponent;
  await play((n) => ['paper', 'scissors', 'rock'][n % 3]);
  out.steps.rematch.result = page.data.result;

  // Log out: the token is gone from storage and the page offers to log in.
  const last = token();
  await page.logout();
  await until('the logout notice', () => page.data.view === 'notice');
  out.steps.logout = { notice: page.data.notice, stored: token(), token: last };
}

// The data fields whose texts the page shows, besides the table (data.s) and the moves.
const SHOWN = ['status', 'notice', 'outcome', 'roundText', 'roundLabel', 'timerText', 'onlineText', 'recordText'];

// listen keeps in said every text the page shows in Chinese, as setData sets it: {field,
// text, bare}, bare being the text without the names of players, which are the players'
// own words in any language. Of the table, the WXML shows the texts without placeholders
// (the script fills the others in): their placeholders go too.
function listen(said) {
  const set = page.setData;
  page.setData = function (patch) {
    set.call(this, patch);
    if (this.data.lang !== 'zh') return;
    const names = [this.data.nickname, this.data.opponent].filter((n) => n);
    const texts = SHOWN.filter((f) => patch[f]).map((f) => [f, patch[f]]);
    if (patch.moves) texts.push(...patch.moves.map((m) => ['moves', m.name]));
    for (const [g, group] of Object.entries(patch.s || {})) {
      for (const [k, s] of Object.entries(group)) texts.push(['s.' + g + '.' + k, s.replace(/\{\w+\}/g, '')]);
    }
    for (const [field, text] of texts) {
      said.push({ field, text, bare: names.reduce((s, n) => s.split(n).join(''), String(text)) });
    }
  };
}

// englishPieces is every piece of English in the table that the Chinese does not share:
// the text of each English entry between its placeholders, where it has a word.
function englishPieces() {
  const pieces = [];
  for (const [g, group] of Object.entries(i18n.en)) {
    for (const [k, s] of Object.entries(group)) {
      if (s === i18n.zh[g][k]) continue;
      for (const p of s.split(/\{\w+\}/)) if (/[A-Za-z]{2}/.test(p)) pieces.push(p.trim());
    }
  }
  return pieces;
}

async function chinese() {
  const said = [];
  load(listen.bind(null, said));
  await until('the lobby', () => page.data.view === 'lobby');
  await until('the count of players online', () => page.data.online > 0);
  const lobby = () => ({ lang: page.data.lang, status: page.data.status, play: page.data.s.lobby.play, title: stub.log.title,
    record: page.data.recordText, online: page.data.onlineText, stored: stub.storage.get('rps.lang') || '', detected: i18n.detect() });
  out.steps.lobby = Object.assign(lobby(), { nickname: page.data.nickname });

  // The switch: English at once, kept in storage, which the next launch reads before
  // WeChat's language; then Chinese again.
  tap('switchLang');
  out.steps.english = lobby();
  tap('switchLang');
  out.steps.chinese = lobby();

  // A match against a bot: what the page says as it goes, the move, a round's result,
  // the outcome.
  const from = said.length;
  tap('playBot');
  await until('a match against a bot', () => page.data.view === 'match' && !page.data.over);
  await until('round 1 to start', () => page.data.canMove);
  out.steps.match = { roundLabel: page.data.roundLabel, moves: page.data.moves.map((m) => m.name), opponent: page.data.opponent };
  tap('move', { choice: 'rock' });
  out.steps.match.chose = page.data.status;
  await until('round 1 to end', () => page.data.history.length >= 1, 30000);
  out.steps.match.roundText = page.data.roundText;
  await play((n) => ['rock', 'paper', 'scissors'][n % 3]);
  Object.assign(out.steps.match, { result: page.data.result, outcome: page.data.outcome, score: [page.data.scoreYou, page.data.scoreThem],
    record: page.data.recordText, statuses: said.slice(from).filter((s) => s.field === 'status').map((s) => s.text) });

  await until('the leaderboard after the match', () => mine());
  out.steps.leaders = { nickname: page.data.nickname, rows: page.data.leaders };

  await rename('石'.repeat(25));
  out.steps.rename = { refused: page.data.status };
  await rename('石头大王');
  Object.assign(out.steps.rename, { status: page.data.status, nickname: page.data.nickname });

  const pieces = englishPieces();
  out.said = said.length;
  out.leaks = said.filter((s) => pieces.some((p) => s.bare.includes(p))).map((s) => s.field + ': ' + s.text);
}

const main = lang.startsWith('en') ? english : chinese;

main().then(() => {
  process.stdout.write(JSON.stringify(out) + '\n');
  process.exit(0);
}, (err) => {
  process.stdout.write(JSON.stringify(out) + '\n');
  console.error(err.stack, '\npage data:', JSON.stringify(page && page.data, null, 1), '\nsockets:', JSON.stringify(stub.log.sockets));
  process.exit(1);
});
