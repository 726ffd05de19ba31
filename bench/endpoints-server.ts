/**
 * A child process of the cost benchmark: answers every path with a healthy JSON body and records
 * when each path was asked, so the spacing of the guard's probes of each endpoint shows how late
 * each launch was against its schedule. `GET /__stats` returns the arrivals; nothing else is
 * counted. Usage: node endpoints-server.js (prints the port it listens on).
 */
import http from 'node:http';

const arrivals = new Map<string, number[]>();
const body = JSON.stringify({ status: 'ok', version: 'v1' });

const server = http.createServer((req, res) => {
  const url = req.url ?? '/';
  if (url === '/__stats') {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(Object.fromEntries(arrivals)));
    return;
  }
  const now = performance.timeOrigin + performance.now();
  const list = arrivals.get(url);
  if (list) list.push(now);
  else arrivals.set(url, [now]);
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(body);
});
server.keepAliveTimeout = 5000;
server.listen(0, '127.0.0.1', () => {
  const address = server.address();
  console.log(JSON.stringify({ port: typeof address === 'object' && address ? address.port : 0 }));
});
// Bounded: never outlives a bench that forgot it.
setTimeout(() => process.exit(0), 10 * 60_000).unref();
process.on('SIGTERM', () => process.exit(0));
