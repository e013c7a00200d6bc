// Drives the real Tunnel of wafer-client-sdk / wafer2-client-sdk against a wsauth server.
//
//   node --experimental-websocket tunnel.js <wafer|wafer2> <server base URL>
//
// TUNNEL_PATH names the ticket endpoint (default /tunnel); WXSTUB_DEBUG=1 logs the
// socket traffic to stderr.
// The SDK logs in, GETs /tunnel with its session headers, connects to the socket URL
// that answer holds (a single-use wsauth ticket), and exchanges tunnel packets. It prints
// one JSON line: the echo the server sent back, or an error.
'use strict';
const [sdkName, base] = process.argv.slice(2);
if (!sdkName || !base) {
  console.error('usage: node --experimental-websocket tunnel.js <wafer|wafer2> <base URL>');
  process.exit(2);
}
require('./wxstub')(base);
const sdk = require(sdkName === 'wafer' ? 'wafer-client-sdk' : 'wafer2-client-sdk');
sdk.setLoginUrl(base + '/login');

function fail(message) {
  console.log(JSON.stringify({ error: message }));
  process.exit(1);
}
setTimeout(() => fail('timeout'), 15000).unref();

// The tunnel answers with the session's openid, so the login comes first.
sdk.login({
  success() {
    const tunnel = new sdk.Tunnel(base + (process.env.TUNNEL_PATH || '/tunnel'));
    tunnel.on('connect', () => tunnel.emit('hello', { n: 1 }));
    tunnel.on('echo', (content) => {
      console.log(JSON.stringify({ echo: content }));
      tunnel.close();
      setTimeout(() => process.exit(0), 50);
    });
    tunnel.on('error', (e) => fail(JSON.stringify(e)));
    if (process.env.WXSTUB_DEBUG) tunnel.on('*', (type, payload) => console.error('tunnel:', type, JSON.stringify(payload)));
    tunnel.open();
  },
  fail(e) { fail('login: ' + (e && e.message)); },
});
