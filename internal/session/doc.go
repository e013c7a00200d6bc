// Package session is the session core that fibermp and wsauth share: the credential
// formats and how they are read, the rules and JSON encoding of fields, the replies of
// each wire protocol, and the session state itself, which a request buffers and a
// socket's live handle writes through.
//
// Nothing here is for applications: fibermp exports what they may call, and its
// Session is the one read/write surface, on requests and (through wsauth) on sockets.
package session
