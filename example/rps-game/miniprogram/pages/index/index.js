// The game's one page: the same rules, messages and words as the web page (web/app.js),
// drawn with setData. The connection is the app's Client (utils/client.js).
'use strict';

const NAMES = { rock: 'rock', paper: 'paper', scissors: 'scissors', '': 'no move' };
const ENDED = { // why the session ended under the socket, said once the client has logged in again
  logged_out: 'You were logged out on another device, and have logged in again.',
  revoked: 'You were logged out by a newer login, and have logged in again.',
  expired: 'Your login expired, and you have logged in again.',
};
const LEFT = { // why the opponent is gone (opponent_left's reason)
  left: 'left the match', disconnected: 'did not come back in time', logged_out: 'logged out',
  revoked: 'was logged out', expired: 'was logged out',
};
const HINT_AFTER = 6000; // ms alone in the queue before the page suggests a bot

Page({
  data: {
    view: 'connecting', // 'connecting', 'lobby', 'match' or 'notice'
    status: 'Connecting…',
    online: 0, // players online on every instance (GET /api/online)
    notice: '',
    nickname: '',
    wins: 0,
    losses: 0,
    draws: 0,
    queued: '', // '' (not queued), 'any' or 'bot'
    hint: false, // suggest a bot: nobody came
    opponent: '',
    bot: false,
    rounds: 3,
    round: 0,
    scoreYou: 0,
    scoreThem: 0,
    canMove: false,
    picked: '',
    secondsLeft: 0,
    handYou: '', // the hands of the last round
    handThem: '',
    roundResult: '', // 'win', 'lose' or 'draw'
    roundText: '',
    history: [], // {round, you, them, result}
    over: false,
    result: '', // the match's: 'win', 'lose', 'draw' or 'abandoned'
    outcome: '',
    away: false, // the opponent is reconnecting
  },

  onLoad() {
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

  // connection shows the socket's state.
  connection(state, info) {
    switch (state) {
      case 'connecting':
        if (this.data.view !== 'match') this.setData({ status: 'Connecting…' });
        break;
      case 'closed':
        this.relogin = ENDED[info.ended] || '';
        if (this.inMatch() && !info.ended) {
          // The match waits for a dropped player (15 s on the server): the next socket,
          // on whichever instance, takes the seat back and gets "resumed".
          this.stopTimer();
          this.setData({ canMove: false, status: 'Connection lost; reconnecting: your match waits for you…' });
          break;
        }
        if (this.inMatch()) this.endMatch('lose', 'You were logged out during the match: it counts as a loss.');
        this.idle();
        this.setData({ view: 'connecting', status: info.ended ? 'Logging in again…' : 'Connection lost; reconnecting…' });
        break;
      case 'retrying':
        this.setData({ view: this.inMatch() ? 'match' : 'connecting', status: (info.error ? 'Could not connect (' + info.error.message + ')' : 'Connection lost') +
          '; trying again in ' + Math.ceil(info.delay / 1000) + ' s…' });
        break;
      case 'logged_out':
        this.setData({ view: 'notice', notice: 'You logged out.', status: '' });
        break;
    }
  },

  // loadOnline shows how many players have the game open, on every instance.
  loadOnline() {
    this.client.request('GET', '/api/online', null, false).then((r) => {
      if (r.statusCode === 200 && r.data && typeof r.data.players === 'number') this.setData({ online: r.data.players });
    }, () => {}); // no count: the lobby works without it
  },

  handle(m) {
    switch (m.type) {
      case 'welcome':
        this.showRecord(m.record);
        this.setData({ nickname: m.nickname, status: (this.relogin || 'Hi ' + m.nickname + '!') + ' Pick an opponent.',
          view: this.data.over || this.inMatch() ? 'match' : 'lobby' }); // a match resumes next
        this.relogin = '';
        this.loadOnline(); // this socket counts now
        break;
      case 'queued':
        this.clearHint();
        this.setData({ view: 'lobby', queued: m.opponent, hint: false,
          status: m.opponent === 'bot' ? 'Calling a bot…' : 'Waiting for an opponent…' });
        if (m.opponent !== 'bot') this.hintTimer = setTimeout(() => this.setData({ hint: true }), HINT_AFTER);
        break;
      case 'matched':
        this.clearHint();
        this.setData({
          view: 'match', queued: '', hint: false, opponent: m.opponent.nickname, bot: !!m.opponent.bot,
          rounds: m.rounds, scoreYou: 0, scoreThem: 0, history: [], over: false, result: '', outcome: '',
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
        if (m.moved) this.setData({ canMove: false, status: 'Back in the match. You have moved; waiting for ' + this.data.opponent + '…' });
        else this.setData({ status: 'Back in the match. Round ' + (done + 1) + ': make your move.' });
        break;
      }
      case 'resume_failed': { // over while this player was away: forfeited, if the grace period ran out
        const lost = m.record && m.record.losses > this.data.losses;
        if (m.record) this.showRecord(m.record);
        if (this.inMatch()) {
          if (lost) this.endMatch('lose', 'You did not come back in time: you lose by forfeit.');
          else this.endMatch('abandoned', 'The match ended while you were away.');
        }
        break;
      }
      case 'opponent_away':
        this.stopTimer(); // the round waits for them
        this.setData({ away: true, secondsLeft: 0, status: this.data.opponent + ' lost the connection. If they are not back in ' + m.grace + ' s, you win by forfeit.' });
        break;
      case 'opponent_back':
        this.setData({ away: false, status: this.data.opponent + ' is back. ' + (this.data.picked ? 'Waiting for their move…' : 'Your move!') });
        this.stopTimer(); // the round starts over for both
        this.deadline = Date.now() + this.moveTimeout * 1000;
        this.tick();
        this.timer = setInterval(() => this.tick(), 250);
        break;
      case 'opponent_moved':
        this.setData({ status: this.data.picked ? this.data.opponent + ' has chosen too…' :
          this.data.opponent + ' has chosen. Your move!' });
        break;
      case 'round': {
        const history = this.data.history.concat([{ round: m.round, you: m.you, them: m.them, result: m.result }]);
        this.setData({ history, handYou: m.you, handThem: m.them, roundResult: m.result,
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
          if (this.inMatch()) this.endMatch('lose', 'You left the match: it counts as a loss.');
          break;
        }
        const score = m.score.you + '–' + m.score.them;
        this.endMatch(m.result, { win: 'You win the match ' + score + '!', lose: 'You lose the match ' + score + '.',
          draw: 'A draw, ' + score + '.' }[m.result]);
        if (m.record) this.showRecord(m.record);
        break;
      }
      case 'opponent_left':
        if (m.forfeit) {
          this.endMatch('win', this.data.opponent + ' ' + (LEFT[m.reason] || 'left the match') + ': you win by forfeit!');
          if (m.record) this.showRecord(m.record);
        } else if (m.reason === 'shutdown') {
          this.endMatch('abandoned', 'The server running the match stopped. The match does not count.');
        } else if (m.reason === 'declined') {
          this.endMatch('abandoned', this.data.opponent + ' stopped waiting as the match began. It does not count.');
        } else { // the result could not be written
          this.endMatch('abandoned', this.data.opponent + ' ' + (LEFT[m.reason] || 'left the match') + '. The match could not be recorded.');
        }
        break;
      case 'left': // out of the queue, as the page already shows
        break;
      case 'error':
        if (m.message === 'your match has started') break; // "Leave" crossed "matched": play it
        this.setData({ status: m.message.startsWith('this server has no bots') ? 'There are no bots on this server.' : '⚠ ' + m.message });
        if (!this.inMatch()) this.idle();
        break;
    }
  },

  // The buttons (bindtap in index.wxml).
  playSomeone() { this.client.send({ type: 'queue' }); },
  playBot() { this.client.send({ type: 'queue', opponent: 'bot' }); },
  leave() {
    // "from":"queue": should the match start meanwhile, the player plays it rather than
    // forfeit a match they have not seen.
    this.client.send({ type: 'leave', from: 'queue' });
    this.idle();
    this.setData({ status: 'Pick an opponent.' });
  },
  move(e) {
    const choice = e.currentTarget.dataset.choice;
    if (!this.data.canMove || !this.client.send({ type: 'move', choice })) return;
    this.setData({ canMove: false, picked: choice, status: 'You chose ' + choice + '. Waiting for ' + this.data.opponent + '…' });
  },
  logout() {
    this.stopTimer();
    this.clearHint();
    return this.client.logout();
  },
  login() {
    this.setData({ view: 'connecting', notice: '', over: false });
    this.client.start();
  },

  inMatch() { return this.data.view === 'match' && !this.data.over; },

  showRecord(r) { this.setData({ wins: r.wins, losses: r.losses, draws: r.draws }); },

  // roundText says who won a round and how.
  roundText(m) {
    const verb = (winner, loser) => !loser ? 'no move in time' :
      { rock: 'rock blunts scissors', paper: 'paper covers rock', scissors: 'scissors cut paper' }[winner];
    const how = m.result === 'draw' ? (m.you ? 'both ' + NAMES[m.you] : 'no moves') :
      m.result === 'win' ? verb(m.you, m.them) : verb(m.them, m.you);
    return 'Round ' + m.round + ': ' + { win: 'you win', lose: this.data.opponent + ' wins', draw: 'a draw' }[m.result] + ' (' + how + ')';
  },

  startRound(n) {
    // Nothing said in the last round carries over.
    this.setData({ round: n, picked: '', canMove: true, status: 'Round ' + n + ': make your move.' });
    this.stopTimer();
    this.deadline = Date.now() + this.moveTimeout * 1000;
    this.tick();
    this.timer = setInterval(() => this.tick(), 250);
  },

  tick() {
    const left = Math.max(0, Math.ceil((this.deadline - Date.now()) / 1000));
    if (left !== this.data.secondsLeft) this.setData({ secondsLeft: left });
    if (left === 0) {
      this.stopTimer();
      this.setData({ canMove: false });
    }
  },

  stopTimer() {
    clearInterval(this.timer);
    this.timer = 0;
  },

  endMatch(result, text) {
    this.stopTimer();
    this.setData({ over: true, result, outcome: text, canMove: false, secondsLeft: 0, away: false,
      status: result === 'abandoned' ? 'Play again?' : 'Match over. Play again?' });
    this.idle();
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
