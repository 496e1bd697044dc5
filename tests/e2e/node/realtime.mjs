// The official OpenAI Node SDK's Realtime client (openai/realtime/ws, on the ws package) for
// tests/e2e/19_websocket_tls.sh: sessions against BASE_URL (the SDK makes it wss://).
// usage: node realtime.mjs BASE_URL KEY MODEL
// Prints, one line each:
//   A events=session.created,session.updated   session A: what it received
//   B error=...                                session B, opened while A is open: its error
//   C events=... tries=N                       after A closed: a new session, tried again while
//                                              the error says 429, up to 10 s
import OpenAI from 'openai';
import { OpenAIRealtimeWS } from 'openai/realtime/ws';

const [baseURL, apiKey, model] = process.argv.slice(2);
if (!baseURL || !apiKey || !model) {
  console.error('usage: node realtime.mjs BASE_URL KEY MODEL');
  process.exit(2);
}
const client = new OpenAI({ baseURL, apiKey });
const TIMEOUT_MS = 10000;

// A session: its events up to "session.updated" (after one session.update), or its error.
function session() {
  return new Promise((resolve) => {
    const rt = new OpenAIRealtimeWS({ model }, client);
    const events = [];
    const timer = setTimeout(() => resolve({ rt, error: 'timeout', events }), TIMEOUT_MS);
    rt.on('error', (err) => {
      clearTimeout(timer);
      resolve({ rt, error: String(err.message).split('\n')[0], events });
    });
    rt.on('event', (event) => {
      events.push(event.type);
      if (event.type === 'session.created')
        rt.send({ type: 'session.update', session: { instructions: 'Be brief.' } });
      if (event.type === 'session.updated') {
        clearTimeout(timer);
        resolve({ rt, events });
      }
    });
  });
}

// Closes the session's socket and waits until it is closed.
function closed(rt) {
  return new Promise((resolve) => {
    if (rt.socket.readyState === rt.socket.CLOSED) return resolve();
    rt.socket.once('close', resolve);
    rt.close();
  });
}

const a = await session();
console.log(a.error ? `A error=${a.error}` : `A events=${a.events.join(',')}`);
const b = await session();
console.log(b.error ? `B error=${b.error}` : `B events=${b.events.join(',')}`);
if (!b.error) await closed(b.rt);
await closed(a.rt);
const deadline = Date.now() + 10000;
let c, tries = 0;
do {
  tries++;
  c = await session();
} while (c.error && c.error.includes('429') && Date.now() < deadline);
console.log(c.error ? `C error=${c.error} tries=${tries}`
                    : `C events=${c.events.join(',')} tries=${tries}`);
if (!c.error) await closed(c.rt);
process.exit(0);
