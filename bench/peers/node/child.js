// bench/child.py's steps for BullMQ for Node: `node child.js SYSTEM STEP [N] [--batch B]
// [--rate R] [--seconds S] [--warm W] [--concurrency C]`; prints one JSON line. The no-op
// handler keeps bench/tally.py's per-process tally and flushes it to the control db the same
// way (HSET bench:tally <pid> {"count","first","last"}, RPUSH bench:latency ...).
'use strict';
const { Queue, Worker } = require('bullmq');
const IORedis = require('ioredis');

const QUEUE = 'bench';
const JOB_OPTS = { removeOnComplete: true };
const WARM_JOBS = 20;

function parse(argv) {
  const args = { step: argv[1], n: 0, batch: 1000, rate: 1000, seconds: 5, warm: 0, concurrency: 0 };
  let i = 2;
  if (argv[i] !== undefined && !argv[i].startsWith('--')) args.n = Number(argv[i++]);
  for (; i < argv.length; i += 2) args[argv[i].slice(2)] = Number(argv[i + 1]);
  return args;
}

function connection(url) {
  return new IORedis(url, { maxRetriesPerRequest: null, enableAutoPipelining: false });
}

const tally = { count: 0, first: null, last: null, latencies: [] };
function startFlusher(url) {
  const control = new IORedis(url);
  setInterval(async () => {
    const snapshot = JSON.stringify({ count: tally.count, first: tally.first, last: tally.last });
    const latencies = tally.latencies;
    tally.latencies = [];
    const pipe = control.pipeline().hset('bench:tally', String(process.pid), snapshot);
    if (latencies.length) pipe.rpush('bench:latency', ...latencies);
    await pipe.exec();
  }, 50);
}
function hit(payload) {
  const now = Date.now() / 1000;
  if (tally.first === null) tally.first = now;
  tally.last = now;
  tally.count += 1;
  if (payload && payload.t) tally.latencies.push(now - payload.t);
}

function payloadAt(i, rate, warm) {
  return i >= warm * rate ? { i, t: Date.now() / 1000 } : { i };
}
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function main() {
  const args = parse(process.argv.slice(2));
  const url = process.env.BENCH_REDIS_URL;
  if (args.step === 'version') {
    console.log(JSON.stringify({ version: require('bullmq/package.json').version }));
    return;
  }
  if (args.step === 'worker') {
    startFlusher(process.env.BENCH_CONTROL_URL);
    // eslint-disable-next-line no-new
    new Worker(QUEUE, async (job) => { hit(job.data); }, {
      connection: connection(url), concurrency: args.concurrency || 64,
    });
    await new Promise(() => {});  // runs until the harness kills the process group
  }
  const queue = new Queue(QUEUE, { connection: connection(url) });
  const send = (payload) => queue.add('noop', payload, JOB_OPTS);
  const sendMany = (payloads) => queue.addBulk(payloads.map((data) => ({ name: 'noop', data, opts: JOB_OPTS })));
  let result;
  if (args.step === 'single' || args.step === 'bulk') {
    for (let i = 0; i < WARM_JOBS; i++) await send({ i: -1 });
  }
  const payloads = Array.from({ length: args.n }, (_, i) => ({ i }));
  const start = process.hrtime.bigint();
  const seconds = () => Number(process.hrtime.bigint() - start) / 1e9;
  if (args.step === 'single') {
    for (const payload of payloads) await send(payload);
    result = { seconds: seconds(), jobs: args.n };
  } else if (args.step === 'bulk' || args.step === 'fill') {
    for (let i = 0; i < payloads.length; i += args.batch) await sendMany(payloads.slice(i, i + args.batch));
    result = { seconds: seconds(), jobs: args.n };
  } else if (args.step === 'paced') {
    const total = Math.floor(args.rate * args.seconds);
    for (let i = 0; i < total; i++) {
      const delay = i / args.rate - seconds();
      if (delay > 0) await sleep(delay * 1000);
      await send(payloadAt(i, args.rate, args.warm));
    }
    result = { sent: total, rate: total / seconds() };
  } else {
    throw new Error(`unknown step ${args.step}`);
  }
  await queue.close();
  console.log(JSON.stringify(result));
  process.exit(0);
}

main().catch((err) => { console.error(err); process.exit(1); });
