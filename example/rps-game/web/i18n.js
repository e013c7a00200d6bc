// The page's words, in Simplified Chinese (the default: the players are in China) and in
// English, and what puts them on the page. Every text the player sees comes from TEXT;
// app.js names its texts by key. A text is a string with {name} placeholders.
'use strict';

const TEXT = {
  zh: {
    'title': '石头剪刀布',
    'header.tag': '三局两胜',
    'lang.switch': 'EN',
    'lang.label': '切换到英文',
    'sound.turnOn': '打开音效',
    'sound.turnOff': '关闭音效',

    'me.title': '我',
    'me.nameLabel': '昵称',
    'me.placeholder': '输入昵称',
    'me.rename': '改名',
    'record.label': '我的战绩',
    'record.won': '胜',
    'record.lost': '负',
    'record.drawn': '平',

    'lobby.title': '开始游戏',
    'lobby.play': '找人对战',
    'lobby.looking': '匹配中…',
    'lobby.bot': '人机对战',
    'lobby.leave': '取消匹配',
    'hint.text': '暂时没有其他玩家。把这个页面发给好友，或者先和机器人玩一局。',
    'hint.bot': '现在和机器人玩',
    'tabs.note': '同一浏览器的标签页都是同一个玩家，不能互相对战。想自己跟自己玩，请用无痕窗口或换个浏览器。',
    'tabs.other': '游戏在另一个标签页里也开着。两个标签页是同一个玩家，不能互相对战；想自己跟自己玩，请用无痕窗口或换个浏览器。',
    'online.alone': '现在只有你在线',
    'online.many': '{n} 人在线',

    'match.you': '我',
    'match.opponent': '对手',
    'match.score': '比分',
    'match.bestOf3': '三局两胜',
    'match.round': '第 {n}/{total} 局',
    'badge.bot': '机器人',
    'badge.away': '重连中…',
    'arena.you': '我',
    'arena.vs': 'VS',
    'moves.label': '出拳',
    'move.rock': '石头',
    'move.paper': '布',
    'move.scissors': '剪刀',
    'hand.rock': '石头',
    'hand.paper': '布',
    'hand.scissors': '剪刀',
    'hand.none': '没出拳',
    'rounds.label': '每局结果',
    'rounds.item': '第 {n} 局：{you} 对 {them}，{result}',
    'rounds.win': '你赢',
    'rounds.lose': '你输',
    'rounds.draw': '平局',
    'timer.left': '剩 {s} 秒',
    'timer.away': '等待重连 {s} 秒',

    'round.result': '第 {n} 局：{who}（{how}）',
    'round.youWin': '你赢了',
    'round.theyWin': '{name} 赢了',
    'round.draw': '平局',
    'how.both': '都出了{hand}',
    'how.noMoves': '双方都没出拳',
    'how.late': '对方超时没出拳',
    'how.lateYou': '你超时没出拳',
    'beats.rock': '石头砸剪刀',
    'beats.paper': '布包石头',
    'beats.scissors': '剪刀剪布',

    'outcome.win': '你赢了！{you}–{them}',
    'outcome.lose': '你输了，{you}–{them}',
    'outcome.draw': '平局，{you}–{them}',
    'outcome.youLeft': '你离开了对局，算你输。',
    'outcome.youLate': '你没有及时回来，判你输。',
    'outcome.awayOver': '你离开时对局已经结束了。',
    'outcome.theyLeft': '{name} {why}，判你获胜！',
    'outcome.shutdown': '对局所在的服务器停了，这局不算。',
    'outcome.declined': '{name} 在开局时取消了匹配，这局不算。',
    'outcome.unrecorded': '{name} {why}，这局的结果没能记录。',
    'left.left': '离开了对局',
    'left.disconnected': '没有及时回来',
    'left.logged_out': '退出了登录',
    'left.revoked': '的登录失效了',
    'left.expired': '的登录过期了',

    'rematch.ask': '再来一局',
    'rematch.accept': '接受',
    'rematch.wait': '等待 {name} 接受…',
    'rematch.left': '（{s} 秒）',
    'rematch.offered': '{name} 想再来一局！',
    'rematch.declined': '{name} 不想再来了。',
    'rematch.noAnswer': '{name} 没有回应。',
    'rematch.expired': '再来一局的邀请过期了。',
    'rematch.gone': '{name} 已经走了。',

    'lb.title': '排行榜',
    'lb.player': '玩家',
    'lb.wld': '胜–负–平',
    'lb.wldTitle': '胜–负–平',
    'lb.streak': '连胜',
    'lb.streakTitle': '最高连胜',

    'status.connecting': '连接中…',
    'status.hi': '你好，{name}！选个对手吧。',
    'status.pick': '选个对手吧。',
    'status.callingBot': '正在叫机器人…',
    'status.waiting': '等待对手…',
    'status.round': '第 {n} 局：请出拳！',
    'status.chose': '你出了{hand}，等待 {name}…',
    'status.theyChose': '{name} 已出拳，该你了！',
    'status.theyChoseToo': '{name} 也出拳了…',
    'status.away': '{name} 断线了，等待重连… {s} 秒内没回来就判你获胜。',
    'status.back': '{name} 回来了，等待对方出拳…',
    'status.backYourMove': '{name} 回来了，该你出拳了！',
    'status.resumedMoved': '已回到对局。你出过拳了，等待 {name}…',
    'status.resumedRound': '已回到对局。第 {n} 局：请出拳！',
    'status.over': '对局结束。还玩吗？',
    'status.again': '还玩吗？',
    'status.lostMatch': '连接断了，正在重连，对局会等你…',
    'status.lost': '连接断了，正在重连…',
    'status.renamed': '你现在叫 {name} 了。',
    'status.error': '⚠ {message}',

    'notice.relogin': '重新登录',
    'notice.wechat': '请在微信小程序里玩这个游戏。',
    'notice.loginFailed': '登录失败：{why}',
    'notice.loggedOut': '你已退出登录。',
    'notice.sessionGone': '你的登录已失效。',
    'notice.crash': '出错了（{why}），请再试一次。',
    'closed.4001': '你在另一个标签页或设备上退出了登录。',
    'closed.4002': '你在别处登录了，这个页面已退出。',
    'closed.4003': '登录已过期。',

    'err.rename': '改名失败。',
    'err.nickname': '昵称要 1 到 24 个字符，不能有控制字符。',
    'err.records': '战绩暂时读不到，请稍后再试。',
    'err.tooManyLogins': '这个网络登录太频繁了，请一分钟后再试。',
    'err.noBots': '这台服务器没有机器人。',
    'err.noBotFree': '暂时没有空闲的机器人，请稍后再试。',
    'err.matchmaking': '匹配暂时不可用，请再试一次。',
    'err.inMatch': '请先打完或离开当前对局。',
    'err.notInMatch': '你不在对局中。',
    'err.moved': '这一局你已经出过拳了。',
    'err.noRematch': '没有可以再来的对局。',
    'err.newerSocket': '这局在你新打开的页面里继续。',

    'how.summary': '工作原理',
    'how.p1': '这个页面是 <a href="https://github.com/mpsession/mpsession">mpsession</a> 示例的网页客户端。它像小程序一样登录（从微信拿一个 code，这里是 <code>/wxtest</code> 上的模拟微信，再发给 <code>POST /login</code>），并把 token 存在 <code>localStorage</code> 里。这个浏览器的所有标签页共用它，所以两个标签页是同一个玩家。',
    'how.p2': 'WebSocket（<code>/ws</code>）用 token 作子协议认证。服务器把每局结果记进你的战绩；<code>GET /api/me</code> 读出战绩，<code>GET /api/leaderboard</code> 列出排行榜。',
    'how.openid': '你的 openid：',
    'logout': '退出登录',
  },
  en: {
    'title': 'Rock Paper Scissors',
    'header.tag': 'best of three',
    'lang.switch': '中文',
    'lang.label': 'Switch to Chinese',
    'sound.turnOn': 'Turn sound on',
    'sound.turnOff': 'Turn sound off',

    'me.title': 'You',
    'me.nameLabel': 'Your name',
    'me.placeholder': 'Your name',
    'me.rename': 'Rename',
    'record.label': 'your record',
    'record.won': 'won',
    'record.lost': 'lost',
    'record.drawn': 'drawn',

    'lobby.title': 'Play',
    'lobby.play': 'Play someone',
    'lobby.looking': 'Looking…',
    'lobby.bot': 'Play a bot',
    'lobby.leave': 'Stop waiting',
    'hint.text': 'No one else is here yet. Send a friend this page, or play a bot while you wait.',
    'hint.bot': 'Play a bot now',
    'tabs.note': 'Every tab of this browser is the same player, so two tabs cannot play each other. To play yourself, open a private window or another browser.',
    'tabs.other': 'This game is open in another tab too. Both tabs are the same player, so they cannot play each other: to play yourself, open a private window or another browser.',
    'online.alone': 'You are the only player online.',
    'online.many': '{n} players online',

    'match.you': 'You',
    'match.opponent': 'Opponent',
    'match.score': 'score',
    'match.bestOf3': 'Best of 3',
    'match.round': 'Round {n} of {total}',
    'badge.bot': 'bot',
    'badge.away': 'reconnecting…',
    'arena.you': 'you',
    'arena.vs': 'VS',
    'moves.label': 'your move',
    'move.rock': 'Rock',
    'move.paper': 'Paper',
    'move.scissors': 'Scissors',
    'hand.rock': 'rock',
    'hand.paper': 'paper',
    'hand.scissors': 'scissors',
    'hand.none': 'no move',
    'rounds.label': 'rounds',
    'rounds.item': 'Round {n}: {you} against {them}, {result}',
    'rounds.win': 'won',
    'rounds.lose': 'lost',
    'rounds.draw': 'drawn',
    'timer.left': '{s} s left',
    'timer.away': '{s} s to come back',

    'round.result': 'Round {n}: {who} ({how})',
    'round.youWin': 'you win',
    'round.theyWin': '{name} wins',
    'round.draw': 'a draw',
    'how.both': 'both {hand}',
    'how.noMoves': 'no moves',
    'how.late': 'no move in time',
    'how.lateYou': 'no move in time',
    'beats.rock': 'rock blunts scissors',
    'beats.paper': 'paper covers rock',
    'beats.scissors': 'scissors cut paper',

    'outcome.win': 'You win the match {you}–{them}!',
    'outcome.lose': 'You lose the match {you}–{them}.',
    'outcome.draw': 'A draw, {you}–{them}.',
    'outcome.youLeft': 'You left the match: it counts as a loss.',
    'outcome.youLate': 'You did not come back in time: you lose by forfeit.',
    'outcome.awayOver': 'The match ended while you were away.',
    'outcome.theyLeft': '{name} {why}: you win by forfeit!',
    'outcome.shutdown': 'The server running the match stopped. The match does not count.',
    'outcome.declined': '{name} stopped waiting as the match began. It does not count.',
    'outcome.unrecorded': '{name} {why}. The match could not be recorded.',
    'left.left': 'left the match',
    'left.disconnected': 'did not come back in time',
    'left.logged_out': 'logged out',
    'left.revoked': 'was logged out',
    'left.expired': 'was logged out',

    'rematch.ask': 'Rematch',
    'rematch.accept': 'Accept',
    'rematch.wait': 'Waiting for {name} to accept…',
    'rematch.left': '({s} s)',
    'rematch.offered': '{name} wants a rematch!',
    'rematch.declined': '{name} declined the rematch.',
    'rematch.noAnswer': '{name} did not answer.',
    'rematch.expired': 'The rematch offer has expired.',
    'rematch.gone': '{name} has left.',

    'lb.title': 'Top players',
    'lb.player': 'Player',
    'lb.wld': 'W–L–D',
    'lb.wldTitle': 'won–lost–drawn',
    'lb.streak': 'Streak',
    'lb.streakTitle': 'best winning streak',

    'status.connecting': 'Connecting…',
    'status.hi': 'Hi {name}! Pick an opponent.',
    'status.pick': 'Pick an opponent.',
    'status.callingBot': 'Calling a bot…',
    'status.waiting': 'Waiting for an opponent…',
    'status.round': 'Round {n}: make your move.',
    'status.chose': 'You chose {hand}. Waiting for {name}…',
    'status.theyChose': '{name} has chosen. Your move!',
    'status.theyChoseToo': '{name} has chosen too…',
    'status.away': '{name} lost the connection. If they are not back in {s} s, you win by forfeit.',
    'status.back': '{name} is back. Waiting for their move…',
    'status.backYourMove': '{name} is back. Your move!',
    'status.resumedMoved': 'Back in the match. You have moved; waiting for {name}…',
    'status.resumedRound': 'Back in the match. Round {n}: make your move.',
    'status.over': 'Match over. Play again?',
    'status.again': 'Play again?',
    'status.lostMatch': 'Connection lost; reconnecting: your match waits for you…',
    'status.lost': 'Connection lost; reconnecting…',
    'status.renamed': 'You are now {name}.',
    'status.error': '⚠ {message}',

    'notice.relogin': 'Log in again',
    'notice.wechat': 'This game is played from its WeChat mini program.',
    'notice.loginFailed': 'Could not log in: {why}',
    'notice.loggedOut': 'You logged out.',
    'notice.sessionGone': 'You have been logged out.',
    'notice.crash': 'Something went wrong ({why}). Try again.',
    'closed.4001': 'You were logged out in another tab or on another device.',
    'closed.4002': 'You logged in somewhere else, so this page was logged out.',
    'closed.4003': 'Your login has expired.',

    'err.rename': 'Could not rename you.',
    'err.nickname': 'A nickname has 1 to 24 printable characters.',
    'err.records': 'Player records are unavailable; try again later.',
    'err.tooManyLogins': 'Too many logins from this network; try again in a minute.',
    'err.noBots': 'There are no bots on this server.',
    'err.noBotFree': 'No bot is free; try again later.',
    'err.matchmaking': 'Matchmaking is unavailable; try again.',
    'err.inMatch': 'Finish or leave your match first.',
    'err.notInMatch': 'You are not in a match.',
    'err.moved': 'You have already moved this round.',
    'err.noRematch': 'There is no match to play again.',
    'err.newerSocket': 'This match goes on in your newer page.',

    'how.summary': 'How it works',
    'how.p1': 'This page is the web client of the <a href="https://github.com/mpsession/mpsession">mpsession</a> sample. It logs in as a mini program does (a code from WeChat, here a fake one at <code>/wxtest</code>, sent to <code>POST /login</code>) and keeps the token in <code>localStorage</code>, which every tab of this browser shares: that is why two tabs are one player.',
    'how.p2': 'The socket (<code>/ws</code>) is authenticated with the token as a subprotocol. The server adds each match result to your record; <code>GET /api/me</code> reads it back, and <code>GET /api/leaderboard</code> lists the top players.',
    'how.openid': 'Your openid:',
    'logout': 'Log out',
  },
};

// The server's messages are in English: those it is known to send have a text of their
// own, found by how they begin (some end with details for the log); others show as sent.
const SERVER_TEXT = [
  ['a nickname has 1 to 24', 'err.nickname'],
  ['player records are unavailable', 'err.records'],
  ['too many logins', 'err.tooManyLogins'],
  ['this server has no bots', 'err.noBots'],
  ['no bot is free', 'err.noBotFree'],
  ['matchmaking is unavailable', 'err.matchmaking'],
  ['finish or leave your match first', 'err.inMatch'],
  ['you are not in a match', 'err.notInMatch'],
  ['you have already moved this round', 'err.moved'],
  ['no match to play again', 'err.noRematch'],
  ['this match goes on in your newer connection', 'err.newerSocket'],
];

// lang is the page's language: the one picked with the switch, else English for a
// browser whose first language is English, else Chinese.
let lang = (() => {
  const picked = localStorage.getItem('rps.lang');
  if (picked === 'zh' || picked === 'en') return picked;
  const first = (navigator.languages && navigator.languages[0]) || navigator.language || '';
  return first.toLowerCase().startsWith('en') ? 'en' : 'zh';
})();

// t returns the text of key in the page's language with its {name} placeholders filled
// from params. A param may itself be a text to translate, given as {key, params}.
function t(key, params) {
  const text = TEXT[lang][key];
  if (text === undefined) return key;
  return text.replace(/\{(\w+)\}/g, (all, name) => {
    const v = params ? params[name] : undefined;
    if (v === undefined || v === null) return all;
    return typeof v === 'object' ? t(v.key, v.params) : String(v);
  });
}

// text returns {key, params}: a param of t translated when the whole text is.
function text(key, params) { return { key, params }; }

// serverText returns the text for a message of the server's: its own, or the message.
function serverText(message) {
  const known = SERVER_TEXT.find(([start]) => message.startsWith(start));
  return known ? text(known[1]) : message; // an unknown one as the server said it
}

// say shows key's text in el (its text, or the attribute attr), and writes the key and
// params on el, so that a change of language shows it again in the new one.
function say(el, key, params, attr) {
  const name = attr === 'aria-label' ? 'i18nLabel' : 'i18n';
  el.dataset[name] = key;
  if (params) el.dataset[name + 'Args'] = JSON.stringify(params);
  else delete el.dataset[name + 'Args'];
  if (attr) el.setAttribute(attr, t(key, params));
  else el.textContent = t(key, params);
}

// unsay empties el, which then has no text to show again.
function unsay(el) {
  delete el.dataset.i18n;
  delete el.dataset.i18nArgs;
  el.textContent = '';
}

// translate shows every text of the page in the page's language: the static ones, named
// in index.html, and those the script wrote with say.
function translate() {
  const args = (json) => json ? JSON.parse(json) : undefined;
  document.documentElement.lang = lang === 'zh' ? 'zh-CN' : 'en';
  document.title = t('title');
  for (const el of document.querySelectorAll('[data-i18n]')) el.textContent = t(el.dataset.i18n, args(el.dataset.i18nArgs));
  for (const el of document.querySelectorAll('[data-i18n-html]')) el.innerHTML = t(el.dataset.i18nHtml);
  for (const el of document.querySelectorAll('[data-i18n-label]')) el.setAttribute('aria-label', t(el.dataset.i18nLabel, args(el.dataset.i18nLabelArgs)));
  for (const el of document.querySelectorAll('[data-i18n-title]')) el.title = t(el.dataset.i18nTitle);
  for (const el of document.querySelectorAll('[data-i18n-placeholder]')) el.placeholder = t(el.dataset.i18nPlaceholder);
}
