// The app holds the one connection to the game server, so that it outlives its page.
'use strict';
const { Client } = require('./utils/client.js');

App({
  onLaunch() {
    this.client = new Client();
  },
  // The runtime closes sockets a while after the app goes to the background: back in
  // front, connect again at once rather than after the backoff.
  onShow() {
    this.client.resume();
  },
});
