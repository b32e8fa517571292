// lap-tui's relay forwarder, run inside a sandbox next to a CLI harness: the sandbox has no
// network, so the CLI talks HTTP to 127.0.0.1:PORT (its own network namespace) and every
// connection is piped to the relay's unix socket, bound read-only into the sandbox.
// Usage: node relay-forward.js PORT SOCKET   (prints READY once listening)
"use strict";
const net = require("net");
const [port, sock] = [Number(process.argv[2]), process.argv[3]];
const server = net.createServer((client) => {
  const up = net.createConnection(sock);
  client.pipe(up);
  up.pipe(client);
  const close = () => { client.destroy(); up.destroy(); };
  client.on("error", close);
  up.on("error", close);
  client.on("close", close);
  up.on("close", close);
});
server.on("error", (err) => { process.stderr.write(`relay forwarder: ${err.message}\n`); process.exit(1); });
server.listen(port, "127.0.0.1", () => { process.stdout.write("READY\n"); });
