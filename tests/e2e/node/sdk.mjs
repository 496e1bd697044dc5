// The honest SDK client of tests/e2e/50_adversary.sh: the official OpenAI Node SDK sending
// chat completions whose JSON has "model" after "messages" and a prompt of about 2.5 KB.
// usage: node sdk.mjs BASE_URL KEY MODEL COUNT MARKER [X_MODEL]
// Prints: way=MARKER sent=N ok=N limited=N other=N
import OpenAI from 'openai';

const [baseURL, apiKey, model, countArg, marker, headerModel] = process.argv.slice(2);
const count = Number(countArg);
if (!baseURL || !apiKey || !model || !(count > 0) || !marker) {
  console.error('usage: node sdk.mjs BASE_URL KEY MODEL COUNT MARKER [X_MODEL]');
  process.exit(2);
}
// No retries: a retried 429 would be one more request than the test sent.
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0, timeout: 10000 });
const content = 'Summarise the following text in one line. '.repeat(58);
const headers = { 'x-way': marker };
if (headerModel) headers['x-model'] = headerModel;

let ok = 0, limited = 0, other = 0;
for (let i = 0; i < count; i++) {
  try {
    // The key order is the body's order: "messages" first, as the Python SDK sends it.
    await client.chat.completions.create({ messages: [{ role: 'user', content }], model },
                                         { headers });
    ok++;
  } catch (e) {
    if (e && e.status === 429) limited++;
    else { other++; console.error(`request ${i + 1}: ${e}`); }
  }
}
console.log(`way=${marker} sent=${count} ok=${ok} limited=${limited} other=${other}`);
