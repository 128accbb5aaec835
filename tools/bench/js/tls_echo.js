// TLS echo server on node's `tls` module, the node peer of tools/bench/echo --tls.
//
//     node tls_echo.js PORT --cert FILE --key FILE
//
// Listens on 127.0.0.1:PORT with the certificate chain and key (PEM) and node's
// defaults otherwise (TLS 1.2 and 1.3; node's own OpenSSL). Each connection
// sets TCP_NODELAY and writes back every chunk it reads; while a write is over
// the socket's high-water mark it stops reading until 'drain'. A peer's end
// (close_notify or FIN) ends the connection from this side too (node's
// default, allowHalfOpen false).
'use strict';
const fs = require('fs');
const tls = require('tls');

function usage(message) {
  console.error(`tls_echo.js: ${message}\nusage: node tls_echo.js PORT --cert FILE --key FILE`);
  process.exit(2);
}

const args = process.argv.slice(2);
const port = Number(args[0]);
if (!Number.isInteger(port) || port <= 0 || port > 65535) usage(`PORT wants 1..65535, got '${args[0]}'`);
const files = {};
for (let i = 1; i < args.length; i += 2) {
  const name = args[i].replace(/^--/, '');
  if (!['cert', 'key'].includes(name) || i + 1 >= args.length) usage(`unexpected '${args[i]}'`);
  files[name] = fs.readFileSync(args[i + 1]);
}
if (!files.cert || !files.key) usage('--cert and --key are needed');

const server = tls.createServer({ cert: files.cert, key: files.key }, (sock) => {
  sock.setNoDelay(true);
  sock.on('data', (chunk) => {
    if (!sock.write(chunk)) {
      sock.pause();
      sock.once('drain', () => sock.resume());
    }
  });
  sock.on('error', () => sock.destroy());
});
// A failed handshake goes to the log: the driver points at it when the client reports one.
server.on('tlsClientError', (err) => console.error(`tls_echo.js: handshake failed: ${err.message}`));
server.listen({ port, host: '127.0.0.1', backlog: 1024 });
