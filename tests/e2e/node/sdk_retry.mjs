// A keep-alive client that retries, for tests/e2e/14_keepalive.sh: the official OpenAI Node SDK
// with its default retries, sending COUNT chat completions one after another. A 429 is
// retried by the SDK after its retry-after-ms. Every HTTP exchange the SDK makes is seen
// through its fetch option.
// usage: node sdk_retry.mjs BASE_URL KEY COUNT
// Prints: sent=N ok=N failed=N statuses=S,S,...
import OpenAI from 'openai';

const [baseURL, apiKey, countArg] = process.argv.slice(2);
const count = Number(countArg);
if (!baseURL || !apiKey || !(count > 0)) {
  console.error('usage: node sdk_retry.mjs BASE_URL KEY COUNT');
  process.exit(2);
}
const statuses = [];
const seen = async (url, init) => {
  const response = await fetch(url, init);
  statuses.push(response.status);
  return response;
};
const client = new OpenAI({ baseURL, apiKey, maxRetries: 2, timeout: 10000, fetch: seen });

let ok = 0, failed = 0;
for (let i = 0; i < count; i++) {
  try {
    await client.chat.completions.create({
      model: 'gpt-small', messages: [{ role: 'user', content: 'hi' }] });
    ok++;
  } catch (e) {
    failed++;
    console.error(`request ${i + 1}: ${e}`);
  }
}
console.log(`sent=${count} ok=${ok} failed=${failed} statuses=${statuses.join(',')}`);
