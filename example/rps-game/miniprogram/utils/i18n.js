// The mini program's words, in Simplified Chinese (the default: the players are in
// China) and in English, with what picks the language and fills a text in. Every text the
// player sees comes from these two tables: the page names its texts by key ('status.hi'),
// and its WXML reads the table of the language shown (data.s: {{s.lobby.play}}). A text
// may have {name} placeholders, filled from the params of t.
'use strict';

const zh = {
  app: {
    title: '石头剪刀布',
    logout: '退出登录',
  },
  lang: {
    switch: 'EN', // the switch names the language it switches to
  },
  record: {
    text: '{w}胜 {l}负 {d}平',
  },
  online: {
    alone: '现在只有你在线',
    many: '{n} 人在线',
  },
  lobby: {
    play: '找人对战',
    looking: '匹配中…',
    bot: '人机对战',
    leave: '取消匹配',
    hint: '现在没有其他玩家。机器人随时奉陪，点「人机对战」吧。',
  },
  match: {
    you: '我',
    round: '第 {n} 局 · 三局两胜',
    again: '换个对手',
    rematch: '再来一局',
    accept: '接受再战',
  },
  badge: {
    bot: '机器人',
    away: '重连中…',
  },
  timer: {
    left: '剩 {s} 秒',
  },
  move: {
    rock: '石头',
    paper: '布',
    scissors: '剪刀',
  },
  hand: {
    rock: '石头',
    paper: '布',
    scissors: '剪刀',
  },
  round: {
    text: '第 {n} 局：{who}（{how}）',
    youWin: '你赢了',
    theyWin: '{name} 赢了',
    draw: '平局',
  },
  how: {
    both: '都出了{hand}',
    noMoves: '双方都没出拳',
    lateThem: '对方超时没出拳',
    lateYou: '你超时没出拳',
    rock: '石头砸剪刀',
    paper: '布包石头',
    scissors: '剪刀剪布',
  },
  outcome: {
    win: '你赢了！{you}–{them}',
    lose: '你输了，{you}–{them}',
    draw: '平局，{you}–{them}',
    youLeft: '你中途退出，算你输。',
    loggedOut: '你在对局中被登出，算你输。',
    youLate: '你没有及时回来，判你输。',
    awayOver: '你不在的时候，对局已经结束了。',
    theyLeft: '{name} {why}，判你获胜！',
    shutdown: '对局所在的服务器停了，这局不算。',
    declined: '{name} 在开局时取消了匹配，这局不算。',
    unrecorded: '{name} {why}，这局没能记录下来。',
  },
  left: { // why the opponent is gone
    left: '离开了对局',
    disconnected: '没有及时回来',
    logged_out: '退出了登录',
    revoked: '被登出了',
    expired: '登录过期了',
  },
  ended: { // why this player's session ended; said once logged in again
    logged_out: '你在另一台设备上退出了登录，已重新登录。',
    revoked: '你在别处登录了，这里已重新登录。',
    expired: '登录已过期，已重新登录。',
  },
  status: {
    connecting: '连接中…',
    rematchWait: '等 {name} 接受再战…（{s} 秒）',
    rematchOffered: '{name} 想再来一局！',
    rematchDeclined: '{name} 不想再来了。',
    rematchGone: '{name} 已经离开了。',
    rematchTimeout: '{name} 没有回应。',
    hi: '你好，{name}！选个对手吧。',
    relogin: '{why}选个对手吧。',
    pick: '选个对手吧。',
    callingBot: '正在叫机器人…',
    waiting: '等待对手…',
    round: '第 {n} 局：请出拳！',
    chose: '你出了{hand}，等待 {name}…',
    theyChose: '{name} 已出拳，该你了！',
    theyChoseToo: '{name} 也出拳了…',
    away: '{name} 断线了，{s} 秒内不回来就判你获胜。',
    back: '{name} 回来了，等对方出拳…',
    backYourMove: '{name} 回来了，该你出拳了！',
    resumedMoved: '已回到对局。你出过拳了，等待 {name}…',
    resumedRound: '已回到对局。第 {n} 局：请出拳！',
    over: '对局结束，再来一局？',
    again: '再来一局？',
    lostMatch: '断线重连中，对局会等你…',
    lost: '断线重连中…',
    relogging: '正在重新登录…',
    retryError: '连不上（{why}），{s} 秒后重试…',
    retryLost: '连接断了，{s} 秒后重试…',
    renamed: '改好了，你现在叫 {name}。',
    error: '⚠ {message}',
  },
  notice: {
    loggedOut: '你已退出登录。',
    login: '登录',
  },
  rename: {
    placeholder: '新昵称',
    save: '改名',
  },
  lb: {
    title: '排行榜',
    player: '玩家',
    wld: '胜-负-平',
    you: '我',
  },
  err: {
    noRematch: '没有可以再来的对局。',
    rename: '改名失败，请再试一次。',
    nickname: '昵称要 1 到 24 个字，不能有控制字符。',
    records: '战绩暂时读不到，请稍后再试。',
    tooManyLogins: '登录太频繁了，请一分钟后再试。',
    noBots: '这台服务器没有机器人。',
    noBotFree: '暂时没有空闲的机器人，请稍后再试。',
    matchmaking: '暂时无法匹配，请再试一次。',
    inMatch: '请先打完或退出当前对局。',
    notInMatch: '你不在对局中。',
    moved: '这一局你已经出过拳了。',
    newerSocket: '这局在你新的连接上继续。',
  },
};

const en = {
  app: {
    title: 'Rock, paper, scissors',
    logout: 'Log out',
  },
  lang: {
    switch: '中文',
  },
  record: {
    text: '{w} won · {l} lost · {d} drawn',
  },
  online: {
    alone: 'You are the only player online.',
    many: '{n} players online',
  },
  lobby: {
    play: 'Play someone',
    looking: 'Looking…',
    bot: 'Play a bot',
    leave: 'Leave',
    hint: 'Nobody else is playing right now. A bot is always ready: press Play a bot.',
  },
  match: {
    you: 'You',
    round: 'Round {n} · best of three',
    again: 'New opponent',
    rematch: 'Rematch',
    accept: 'Accept rematch',
  },
  badge: {
    bot: 'bot',
    away: 'reconnecting…',
  },
  timer: {
    left: '{s} s left',
  },
  move: {
    rock: 'Rock',
    paper: 'Paper',
    scissors: 'Scissors',
  },
  hand: {
    rock: 'rock',
    paper: 'paper',
    scissors: 'scissors',
  },
  round: {
    text: 'Round {n}: {who} ({how})',
    youWin: 'you win',
    theyWin: '{name} wins',
    draw: 'a draw',
  },
  how: {
    both: 'both {hand}',
    noMoves: 'no moves',
    lateThem: 'no move in time',
    lateYou: 'no move in time',
    rock: 'rock blunts scissors',
    paper: 'paper covers rock',
    scissors: 'scissors cut paper',
  },
  outcome: {
    win: 'You win the match {you}–{them}!',
    lose: 'You lose the match {you}–{them}.',
    draw: 'A draw, {you}–{them}.',
    youLeft: 'You left the match: it counts as a loss.',
    loggedOut: 'You were logged out during the match: it counts as a loss.',
    youLate: 'You did not come back in time: you lose by forfeit.',
    awayOver: 'The match ended while you were away.',
    theyLeft: '{name} {why}: you win by forfeit!',
    shutdown: 'The server running the match stopped. The match does not count.',
    declined: '{name} stopped waiting as the match began. It does not count.',
    unrecorded: '{name} {why}. The match could not be recorded.',
  },
  left: {
    left: 'left the match',
    disconnected: 'did not come back in time',
    logged_out: 'logged out',
    revoked: 'was logged out',
    expired: 'was logged out',
  },
  ended: {
    logged_out: 'You were logged out on another device, and have logged in again.',
    revoked: 'You were logged out by a newer login, and have logged in again.',
    expired: 'Your login expired, and you have logged in again.',
  },
  status: {
    connecting: 'Connecting…',
    rematchWait: 'Waiting for {name} to accept a rematch… ({s} s)',
    rematchOffered: '{name} wants a rematch!',
    rematchDeclined: '{name} does not want a rematch.',
    rematchGone: '{name} has left.',
    rematchTimeout: '{name} did not answer.',
    hi: 'Hi {name}! Pick an opponent.',
    relogin: '{why} Pick an opponent.',
    pick: 'Pick an opponent.',
    callingBot: 'Calling a bot…',
    waiting: 'Waiting for an opponent…',
    round: 'Round {n}: make your move.',
    chose: 'You chose {hand}. Waiting for {name}…',
    theyChose: '{name} has chosen. Your move!',
    theyChoseToo: '{name} has chosen too…',
    away: '{name} lost the connection. If they are not back in {s} s, you win by forfeit.',
    back: '{name} is back. Waiting for their move…',
    backYourMove: '{name} is back. Your move!',
    resumedMoved: 'Back in the match. You have moved; waiting for {name}…',
    resumedRound: 'Back in the match. Round {n}: make your move.',
    over: 'Match over. Play again?',
    again: 'Play again?',
    lostMatch: 'Connection lost; reconnecting: your match waits for you…',
    lost: 'Connection lost; reconnecting…',
    relogging: 'Logging in again…',
    retryError: 'Could not connect ({why}); trying again in {s} s…',
    retryLost: 'Connection lost; trying again in {s} s…',
    renamed: 'You are now {name}.',
    error: '⚠ {message}',
  },
  notice: {
    loggedOut: 'You logged out.',
    login: 'Log in',
  },
  rename: {
    placeholder: 'New nickname',
    save: 'Rename',
  },
  lb: {
    title: 'Top players',
    player: 'Player',
    wld: 'W–L–D',
    you: 'you',
  },
  err: {
    noRematch: 'There is no match to play again.',
    rename: 'Could not rename you; try again.',
    nickname: 'A nickname has 1 to 24 printable characters.',
    records: 'Player records are unavailable; try again later.',
    tooManyLogins: 'Too many logins; try again in a minute.',
    noBots: 'There are no bots on this server.',
    noBotFree: 'No bot is free; try again later.',
    matchmaking: 'Matchmaking is unavailable; try again.',
    inMatch: 'Finish or leave your match first.',
    notInMatch: 'You are not in a match.',
    moved: 'You have already moved this round.',
    newerSocket: 'This match goes on in your newer connection.',
  },
};

const TABLES = { zh, en };
const LANG = 'rps.lang'; // the storage key of the language picked with the switch

// The server's messages are in English: those it is known to send have a text of their
// own, found by how they begin (some end with details meant for a log).
const SERVER = [
  ['a nickname has 1 to 24', 'err.nickname'],
  ['player records are unavailable', 'err.records'],
  ['too many logins', 'err.tooManyLogins'],
  ['this server has no bots', 'err.noBots'],
  ['no bot is free', 'err.noBotFree'],
  ['matchmaking is unavailable', 'err.matchmaking'],
  ['finish or leave your match first', 'err.inMatch'],
  ['you are not in a match', 'err.notInMatch'],
  ['you have already moved this round', 'err.moved'],
  ['this match goes on in your newer connection', 'err.newerSocket'],
  ['no match to play again', 'err.noRematch'],
];

let current = 'zh';

// systemLanguage is WeChat's language ("zh_CN", "en"...): from wx.getAppBaseInfo where
// the base library has it (2.20.1 and later), else from wx.getSystemInfoSync.
function systemLanguage() {
  try {
    const info = wx.getAppBaseInfo && wx.getAppBaseInfo();
    if (info && info.language) return info.language;
  } catch (e) { /* an older base library: ask the other way */ }
  try {
    return wx.getSystemInfoSync().language || '';
  } catch (e) {
    return '';
  }
}

// detect returns the language to show: the one picked with the switch, else English
// where WeChat is in English, else Chinese.
function detect() {
  const picked = wx.getStorageSync(LANG);
  if (TABLES[picked]) return picked;
  return systemLanguage().toLowerCase().startsWith('en') ? 'en' : 'zh';
}

// use makes lang ('zh' or 'en') the language of t; remember keeps it for the next launch.
function use(lang, remember) {
  current = TABLES[lang] ? lang : 'zh';
  if (remember) wx.setStorageSync(LANG, current);
}

function lang() { return current; }

// table is the current language's table, for the page's data (its WXML reads s.group.key).
function table() { return TABLES[current]; }

// t returns the text of key ('group.name') in the current language with its {name}
// placeholders filled from params. A param is a string or number, or a text of the
// table itself, given as text(key, params). An unknown key shows as itself.
function t(key, params) {
  const dot = key.indexOf('.');
  const group = TABLES[current][key.slice(0, dot)];
  const s = group && group[key.slice(dot + 1)];
  if (typeof s !== 'string') return key;
  return s.replace(/\{(\w+)\}/g, (all, name) => {
    const v = params ? params[name] : undefined;
    if (v === undefined || v === null) return all;
    return typeof v === 'object' ? t(v.key, v.params) : String(v);
  });
}

// text names a text without saying it: the page keeps it, to say it again in the other
// language when the player switches.
function text(key, params) { return { key, params }; }

// serverText returns the text of a message of the server's, or the message itself
// where the table has none.
function serverText(message) {
  const known = SERVER.find(([start]) => message.startsWith(start));
  return known ? text(known[1]) : message;
}

module.exports = { zh, en, detect, use, lang, table, t, text, serverText };
