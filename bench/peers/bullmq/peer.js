// The BullMQ peer of `python -m bench peers`: `node peer.js worker | enqueue KIND N | submit N | latency N`.
// Runs with NODE_PATH pointing at .data/bench/bullmq/node_modules (installed by `npm ci` from this folder).
'use strict';
const { Queue, QueueEvents, Worker } = require('bullmq');

const url = new URL(process.env.BENCH_REDIS);
const connection = { host: url.hostname, port: Number(url.port), maxRetriesPerRequest: null };
const results = process.env.BENCH_RESULTS !== '0';
const concurrency = Number(process.env.BENCH_CONCURRENCY || '1');
const NAME = 'bench';
// Kept jobs (results) stay in the completed set, as BullMQ does by default; without results each is removed.
const jobOptions = results ? {} : { removeOnComplete: true };

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function worker() {
  const w = new Worker(NAME, async (job) => {
    if (job.name === 'sleep') await sleep(100);
    return null;
  }, { connection, concurrency });
  const stop = async () => { await w.close(); process.exit(0); };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

async function enqueue(kind, n) {
  const queue = new Queue(NAME, { connection });
  for (let start = 0; start < n; start += 1000) {
    const batch = [];
    for (let i = start; i < Math.min(n, start + 1000); i++) batch.push({ name: kind, data: {}, opts: jobOptions });
    await queue.addBulk(batch);
  }
  await queue.close();
}

async function submit(n) {
  const queue = new Queue(NAME, { connection });
  for (let i = 0; i < 100; i++) await queue.add('noop', {}, jobOptions); // warm-up
  const started = process.hrtime.bigint();
  for (let i = 0; i < n; i++) await queue.add('noop', {}, jobOptions);
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  await queue.close();
  return { rate: n / seconds };
}

async function latency(n) {
  const queue = new Queue(NAME, { connection });
  const events = new QueueEvents(NAME, { connection });
  await events.waitUntilReady();
  const ms = [];
  for (let i = 0; i < n + 20; i++) {
    const started = process.hrtime.bigint();
    const job = await queue.add('noop', {}, jobOptions);
    await job.waitUntilFinished(events, 30000);
    if (i >= 20) ms.push(Number(process.hrtime.bigint() - started) / 1e6); // the first 20 warm up
  }
  await events.close();
  await queue.close();
  return { ms };
}

async function main() {
  const [command, a, b] = process.argv.slice(2);
  if (command === 'worker') return worker();
  let out = {};
  if (command === 'enqueue') await enqueue(a, Number(b));
  else if (command === 'submit') out = await submit(Number(a));
  else if (command === 'latency') out = await latency(Number(a));
  else throw new Error(`unknown command ${command}`);
  console.log(JSON.stringify(out));
  process.exit(0);
}

main().catch((error) => { console.error(error); process.exit(1); });
