// Where the game server is: the one setting to change (see README.md). A phone accepts
// only https, to a domain listed for the app in the mini program's admin console, and
// dials the socket at the same host with wss; WeChat DevTools, with "do not check
// domains" ticked, also accepts http://127.0.0.1.
module.exports = {
  server: 'http://127.0.0.1:8080',
};
