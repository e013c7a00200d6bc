// Plays the mini program under node against a real server, as miniprogram_test.go
// runs it:
//
//	node --experimental-websocket run.js http://127.0.0.1:PORT oMini
//
// It loads the mini program's own app.js and page with a stub wx (wx.js), and presses
// the page's buttons as its WXML would: a best-of-three match against a player (the Go
// test), a second match the player leaves (a win by forfeit), a dropped connection, a
// logout on "another device" (close 4001), a match against a bot with a dropped
// connection in the middle, and a logout. It prints one JSON object of what it saw,
// which the Go test checks.
'use strict';
const [base, openid] = process.argv.slice(2);
const stub = require('./wx.js')(base, openid);
require('../config.js').server = base; // the one setting a user edits

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

// tap calls a handler as a bindtap with data-* attributes would.
function tap(handler, dataset = {}) {
  page[handler]({ type: 'tap', currentTarget: { dataset }, target: { dataset } });
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

async function main() {
  require('../app.js');
  const app = getApp();
  app.onLaunch();
  app.onShow();
  require('../pages/index/index.js');
  page = stub.loaded.page;
  page.onLoad({});

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

  // Log out: the token is gone from storage and the page offers to log in.
  const last = token();
  await page.logout();
  await until('the logout notice', () => page.data.view === 'notice');
  out.steps.logout = { notice: page.data.notice, stored: token(), token: last };
}

main().then(() => {
  process.stdout.write(JSON.stringify(out) + '\n');
  process.exit(0);
}, (err) => {
  process.stdout.write(JSON.stringify(out) + '\n');
  console.error(err.stack, '\npage data:', JSON.stringify(page && page.data, null, 1), '\nsockets:', JSON.stringify(stub.log.sockets));
  process.exit(1);
});
