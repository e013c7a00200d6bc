// The game's one page: the same rules, messages and words as the web page (web/app.js),
// drawn with setData. The connection is the app's Client (utils/client.js); every word
// shown comes from utils/i18n.js, in Chinese or English.
'use strict';
const i18n = require('../../utils/i18n.js');

const { text } = i18n;
const HAND = { rock: 'hand.rock', paper: 'hand.paper', scissors: 'hand.scissors' };
const MOVES = [['rock', 'move.rock'], ['paper', 'move.paper'], ['scissors', 'move.scissors']]; // the buttons, in order
const BEATS = { rock: 'how.rock', paper: 'how.paper', scissors: 'how.scissors' }; // how the winner's hand won
const ENDED = { // why the session ended under the socket, said once the client has logged in again
  logged_out: 'ended.logged_out', revoked: 'ended.revoked', expired: 'ended.expired',
};
const LEFT = { // why the opponent is gone (opponent_left's reason)
  left: 'left.left', disconnected: 'left.disconnected', logged_out: 'left.logged_out',
  revoked: 'left.revoked', expired: 'left.expired',
};
const HINT_AFTER = 6000; // ms alone in the queue before the page suggests a bot

// The data fields that hold a text of the table. The page sets them with put, which
// says the text and keeps its key and params, to say it again when the language changes.
const SAID = ['status', 'notice', 'outcome', 'roundText', 'roundLabel', 'timerText', 'onlineText', 'recordText'];

Page({
  data: {
    view: 'connecting', // 'connecting', 'lobby', 'match' or 'notice'
    lang: 'zh',
    s: i18n.zh, // the table of the language shown, which the WXML reads
    moves: [], // the move buttons: {choice, name}
    status: '',
    online: 0, // players online on every instance (GET /api/online)
    onlineText: '',
    notice: '',
    nickname: '',
    nameInput: '', // the rename box
    wins: 0,
    losses: 0,
    draws: 0,
    recordText: '',
    leaders: [], // the leaderboard: {rank, nickname, wins, losses, draws, me}
    queued: '', // '' (not queued), 'any' or 'bot'
    hint: false, // suggest a bot: nobody came
    opponent: '',
    bot: false,
    rounds: 3,
    round: 0,
    roundLabel: '',
    scoreYou: 0,
    scoreThem: 0,
    canMove: false,
    picked: '',
    secondsLeft: 0,
    timerText: '',
    handYou: '', // the hands of the last round
    handThem: '',
    roundResult: '', // 'win', 'lose' or 'draw'
    roundText: '',
    history: [], // {round, you, them, result}
    over: false,
    canRematch: false, // the match was played to its end: its opponent may play again
    rematch: '', // '' , 'wait' (asked) or 'offered' (the opponent asks)
    result: '', // the match's: 'win', 'lose', 'draw' or 'abandoned'
    outcome: '',
    away: false, // the opponent is reconnecting
  },

  onLoad() {
    this.said = {}; // SAID field → the text it shows, as text(key, params)
    this.showLang(i18n.detect());
    this.put({ status: text('status.connecting') });
    this.client = getApp().client;
    this.client.onMessage = (m) => this.handle(m);
    this.client.onState = (state, info) => this.connection(state, info);
    this.client.start();
  },

  onUnload() {
    this.client.stop();
    this.stopTimer();
    this.clearHint();
  },

  // put is setData, with the SAID fields given as text(key, params), or '' for none.
  put(patch) {
    const data = Object.assign({}, patch);
    for (const f of SAID) {
      if (!(f in data)) continue;
      this.said[f] = data[f];
      data[f] = data[f] ? i18n.t(data[f].key, data[f].params) : '';
    }
    this.setData(data);
  },

  // showLang shows the page in lang, remembered for the next launch if remember: the
  // WXML's table, the move buttons, the title, and every text on screen said again.
  showLang(lang, remember) {
    i18n.use(lang, remember);
    const data = { lang, s: i18n.table(), moves: MOVES.map(([choice, key]) => ({ choice, name: i18n.t(key) })) };
    for (const f of SAID) {
      const said = this.said[f];
      data[f] = said ? i18n.t(said.key, said.params) : '';
    }
    this.setData(data);
    wx.setNavigationBarTitle({ title: i18n.t('app.title') });
  },

  // switchLang is the header's switch: the other language, at once and from now on.
  switchLang() {
    this.showLang(this.data.lang === 'zh' ? 'en' : 'zh', true);
  },

  // connection shows the socket's state.
  connection(state, info) {
    switch (state) {
      case 'connecting':
        if (this.data.view !== 'match') this.put({ status: text('status.connecting') });
        break;
      case 'closed':
        this.relogin = ENDED[info.ended] || '';
        if (this.inMatch() && !info.ended) {
          // The match waits for a dropped player (15 s on the server): the next socket,
          // on whichever instance, takes the seat back and gets "resumed".
          this.stopTimer();
          this.put({ canMove: false, status: text('status.lostMatch') });
          break;
        }
        if (this.inMatch()) this.endMatch('lose', text('outcome.loggedOut'));
        this.idle();
        this.put({ view: 'connecting', status: text(info.ended ? 'status.relogging' : 'status.lost') });
        break;
      case 'retrying': {
        const s = Math.ceil(info.delay / 1000);
        this.put({ view: this.inMatch() ? 'match' : 'connecting',
          status: info.error ? text('status.retryError', { why: info.error.message, s }) : text('status.retryLost', { s }) });
        break;
      }
      case 'logged_out':
        this.put({ view: 'notice', notice: text('notice.loggedOut'), status: '' });
        break;
    }
  },

  // loadOnline shows how many players have the game open, on every instance.
  loadOnline() {
    this.client.request('GET', '/api/online', null, false).then((r) => {
      if (r.statusCode !== 200 || !r.data || typeof r.data.players !== 'number') return;
      const n = r.data.players;
      this.put({ online: n, onlineText: text(n === 1 ? 'online.alone' : 'online.many', { n }) });
    }, () => {}); // no count: the lobby works without it
  },

  // loadLeaderboard shows the top players. The asker's own line is the one the server
  // marks "me" (by openid): two players may share a nickname.
  loadLeaderboard() {
    this.client.request('GET', '/api/leaderboard').then((r) => {
      if (r.statusCode !== 200 || !r.data || !Array.isArray(r.data.players)) return;
      this.setData({ leaders: r.data.players.slice(0, 10).map((p, i) => ({
        rank: i + 1, nickname: p.nickname, wins: p.wins, losses: p.losses, draws: p.draws, me: !!p.me,
      })) });
    }, () => {}); // no leaderboard: the lobby works without it
  },

  handle(m) {
    switch (m.type) {
      case 'welcome':
        this.showRecord(m.record);
        this.put({ nickname: m.nickname,
          status: this.relogin ? text('status.relogin', { why: text(this.relogin) }) : text('status.hi', { name: m.nickname }),
          view: this.data.over || this.inMatch() ? 'match' : 'lobby' }); // a match resumes next
        this.relogin = '';
        // A new socket's server forgot the last match: no rematch of it.
        this.setData({ canRematch: false, rematch: '' });
        this.loadOnline(); // this socket counts now
        this.loadLeaderboard();
        break;
      case 'queued':
        this.clearHint();
        this.put({ view: 'lobby', queued: m.opponent, hint: false,
          status: text(m.opponent === 'bot' ? 'status.callingBot' : 'status.waiting') });
        if (m.opponent !== 'bot') this.hintTimer = setTimeout(() => this.setData({ hint: true }), HINT_AFTER);
        break;
      case 'matched':
        this.clearHint();
        this.put({
          view: 'match', queued: '', hint: false, opponent: m.opponent.nickname, bot: !!m.opponent.bot,
          rounds: m.rounds, scoreYou: 0, scoreThem: 0, history: [], over: false, result: '', outcome: '',
          canRematch: false, rematch: '',
          handYou: '', handThem: '', roundResult: '', roundText: '',
        });
        this.moveTimeout = m.moveTimeout;
        this.startRound(1);
        break;
      case 'resumed': { // back in the match after a dropped connection, maybe on another server
        if (!this.inMatch()) this.handle({ type: 'matched', opponent: m.opponent, rounds: m.rounds, moveTimeout: m.moveTimeout });
        this.moveTimeout = m.moveTimeout;
        this.setData({ view: 'match', scoreYou: m.score.you, scoreThem: m.score.them, away: !!m.away });
        const done = m.round || 0; // rounds played; the server leaves it out before the first
        this.startRound(done + 1);
        if (m.moved) this.put({ canMove: false, status: text('status.resumedMoved', { name: this.data.opponent }) });
        else this.put({ status: text('status.resumedRound', { n: done + 1 }) });
        break;
      }
      case 'resume_failed': { // over while this player was away: forfeited, if the grace period ran out
        const lost = m.record && m.record.losses > this.data.losses;
        if (m.record) this.showRecord(m.record);
        if (this.inMatch()) {
          if (lost) this.endMatch('lose', text('outcome.youLate'));
          else this.endMatch('abandoned', text('outcome.awayOver'));
        }
        break;
      }
      case 'opponent_away':
        this.stopTimer(); // the round waits for them
        this.put({ away: true, secondsLeft: 0, timerText: '', status: text('status.away', { name: this.data.opponent, s: m.grace }) });
        break;
      case 'opponent_back':
        this.put({ away: false, status: text(this.data.picked ? 'status.back' : 'status.backYourMove', { name: this.data.opponent }) });
        this.stopTimer(); // the round starts over for both
        this.deadline = Date.now() + this.moveTimeout * 1000;
        this.tick();
        this.timer = setInterval(() => this.tick(), 250);
        break;
      case 'opponent_moved':
        this.put({ status: text(this.data.picked ? 'status.theyChoseToo' : 'status.theyChose', { name: this.data.opponent }) });
        break;
      case 'round': {
        const history = this.data.history.concat([{ round: m.round, you: m.you, them: m.them, result: m.result }]);
        this.put({ history, handYou: m.you, handThem: m.them, roundResult: m.result,
          roundText: this.roundText(m), scoreYou: m.score.you, scoreThem: m.score.them });
        const over = m.round >= this.data.rounds || m.score.you >= 2 || m.score.them >= 2;
        if (!over) this.startRound(m.round + 1);
        else {
          this.stopTimer();
          this.setData({ canMove: false });
        }
        break;
      }
      case 'match_over': {
        if (m.forfeit) { // this player left the match
          if (m.record) this.showRecord(m.record);
          if (this.inMatch()) this.endMatch('lose', text('outcome.youLeft'));
          break;
        }
        const score = { you: m.score.you, them: m.score.them };
        this.endMatch(m.result, text({ win: 'outcome.win', lose: 'outcome.lose', draw: 'outcome.draw' }[m.result], score));
        if (m.record) this.showRecord(m.record);
        this.setData({ canRematch: true });
        break;
      }
      // A rematch: after a match played to its end, either player asks, and the match's
      // server starts another between the two once both have (matched follows).
      case 'rematch_wait':
        this.put({ rematch: 'wait', status: text('status.rematchWait', { name: m.opponent.nickname, s: m.grace }) });
        break;
      case 'rematch_offered':
        this.put({ rematch: 'offered', status: text('status.rematchOffered', { name: m.opponent.nickname }) });
        break;
      case 'rematch_off':
        this.put({ rematch: '', canRematch: false, status: text({ declined: 'status.rematchDeclined', gone: 'status.rematchGone' }[m.reason] || 'status.rematchTimeout',
          { name: this.data.opponent }) });
        break;
      case 'opponent_left': {
        const name = this.data.opponent;
        const why = text(LEFT[m.reason] || 'left.left');
        if (m.forfeit) {
          this.endMatch('win', text('outcome.theyLeft', { name, why }));
          if (m.record) this.showRecord(m.record);
        } else if (m.reason === 'shutdown') {
          this.endMatch('abandoned', text('outcome.shutdown'));
        } else if (m.reason === 'declined') {
          this.endMatch('abandoned', text('outcome.declined', { name }));
        } else { // the result could not be written
          this.endMatch('abandoned', text('outcome.unrecorded', { name, why }));
        }
        break;
      }
      case 'left': // out of the queue, as the page already shows
        break;
      case 'error':
        if (m.message === 'your match has started') break; // "Leave" crossed "matched": play it
        this.put({ status: text('status.error', { message: i18n.serverText(m.message) }) });
        if (!this.inMatch()) this.idle();
        break;
    }
  },

  // The buttons and the rename box (bindtap, bindinput in index.wxml).
  playSomeone() { this.client.send({ type: 'queue' }); },
  rematch() { this.client.send({ type: 'rematch' }); },
  playBot() { this.client.send({ type: 'queue', opponent: 'bot' }); },
  leave() {
    // "from":"queue": should the match start meanwhile, the player plays it rather than
    // forfeit a match they have not seen.
    this.client.send({ type: 'leave', from: 'queue' });
    this.idle();
    this.put({ status: text('status.pick') });
  },
  move(e) {
    const choice = e.currentTarget.dataset.choice;
    if (!this.data.canMove || !this.client.send({ type: 'move', choice })) return;
    this.put({ canMove: false, picked: choice, status: text('status.chose', { hand: text(HAND[choice]), name: this.data.opponent }) });
  },
  typeName(e) {
    this.setData({ nameInput: e.detail.value });
  },
  // rename asks the server for the name typed in; it checks it (1 to 24 printable
  // characters) and says why it refuses one. The promise is the test's, to wait on.
  rename() {
    return this.client.request('POST', '/api/nickname', { nickname: this.data.nameInput }).then((r) => {
      if (r.statusCode === 200 && r.data && r.data.nickname) {
        this.put({ nickname: r.data.nickname, nameInput: '', status: text('status.renamed', { name: r.data.nickname }) });
        this.loadLeaderboard(); // the name may be on it
        return;
      }
      const message = r.data && r.data.message;
      this.put({ status: text('status.error', { message: message ? i18n.serverText(message) : text('err.rename') }) });
    }, () => this.put({ status: text('status.error', { message: text('err.rename') }) }));
  },
  logout() {
    this.stopTimer();
    this.clearHint();
    return this.client.logout();
  },
  login() {
    this.put({ view: 'connecting', notice: '', over: false });
    this.client.start();
  },

  inMatch() { return this.data.view === 'match' && !this.data.over; },

  showRecord(r) {
    this.put({ wins: r.wins, losses: r.losses, draws: r.draws, recordText: text('record.text', { w: r.wins, l: r.losses, d: r.draws }) });
  },

  // roundText says who won a round and how.
  roundText(m) {
    let how;
    if (m.result === 'draw') how = m.you ? text('how.both', { hand: text(HAND[m.you]) }) : text('how.noMoves');
    else if (m.result === 'win') how = text(m.them ? BEATS[m.you] : 'how.lateThem');
    else how = text(m.you ? BEATS[m.them] : 'how.lateYou');
    const who = { win: text('round.youWin'), lose: text('round.theyWin', { name: this.data.opponent }), draw: text('round.draw') }[m.result];
    return text('round.text', { n: m.round, who, how });
  },

  startRound(n) {
    // Nothing said in the last round carries over.
    this.put({ round: n, picked: '', canMove: true, roundLabel: text('match.round', { n }), status: text('status.round', { n }) });
    this.stopTimer();
    this.deadline = Date.now() + this.moveTimeout * 1000;
    this.tick();
    this.timer = setInterval(() => this.tick(), 250);
  },

  tick() {
    const left = Math.max(0, Math.ceil((this.deadline - Date.now()) / 1000));
    if (left !== this.data.secondsLeft) this.put({ secondsLeft: left, timerText: left ? text('timer.left', { s: left }) : '' });
    if (left === 0) {
      this.stopTimer();
      this.setData({ canMove: false });
    }
  },

  stopTimer() {
    clearInterval(this.timer);
    this.timer = 0;
  },

  // endMatch shows the match's result, said by outcome, and the leaderboard it changed.
  endMatch(result, outcome) {
    this.stopTimer();
    this.put({ over: true, result, outcome, canMove: false, secondsLeft: 0, timerText: '', away: false,
      status: text(result === 'abandoned' ? 'status.again' : 'status.over') });
    this.idle();
    this.loadLeaderboard();
  },

  idle() {
    this.clearHint();
    this.setData({ queued: '', hint: false });
  },

  clearHint() {
    clearTimeout(this.hintTimer);
    this.hintTimer = 0;
  },
});
