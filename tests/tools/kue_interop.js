// Real Kue 0.11.6 for tests/test_worker_interop.py: creates jobs, processes them, or watches
// the queue's events, printing one JSON object per line.
// Usage: node kue_interop.js <create|process|watch> '<json config>'
//   config: {modules, port, prefix, ...}; REDIS port must be a private test server.
'use strict';
const path = require('path');
const mode = process.argv[2];
const cfg = JSON.parse(process.argv[3]);
if (!cfg.port || cfg.port === 6379) { console.error('use a private Redis port, not 6379'); process.exit(2); }
const kue = require(path.join(cfg.modules, 'kue'));
const queue = kue.createQueue({ prefix: cfg.prefix, redis: { port: cfg.port, host: '127.0.0.1' },
                                promotion: { interval: 200 } });
const out = obj => process.stdout.write(JSON.stringify(obj) + '\n');
queue.on('error', err => out({ error: String(err) }));

const EVENTS = ['enqueue', 'start', 'progress', 'complete', 'failed', 'failed attempt',
                'promotion', 'remove', 'error'];
const seen = [];
function record() {
  EVENTS.forEach(name => queue.on('job ' + name, function (id) {
    const args = Array.prototype.slice.call(arguments, 1);
    seen.push({ id: Number(id), event: name, args: args });
  }));
}

function finish(ids) {
  let pending = ids.length;
  const jobs = {};
  if (!pending) return done({});
  ids.forEach(id => kue.Job.get(id, (err, job) => {
    jobs[id] = err ? { error: String(err) } : job.toJSON();
    if (--pending === 0) done(jobs);
  }));
  function done(jobsOut) {
    out({ events: seen, jobs: jobsOut });
    queue.shutdown(1000, () => process.exit(0));
  }
}

if (mode === 'create') {
  let left = cfg.jobs.length;
  const ids = new Array(cfg.jobs.length);
  cfg.jobs.forEach((spec, i) => {
    const job = queue.create(spec.type, spec.data);
    if (spec.priority !== undefined) job.priority(spec.priority);
    if (spec.attempts) job.attempts(spec.attempts);
    if (spec.backoff !== undefined) job.backoff(spec.backoff);
    // A function backoff, as Node Kue users write them (JSON cannot carry one).
    if (spec.backoff_source !== undefined) job.backoff(eval('(' + spec.backoff_source + ')'));
    if (spec.delay) job.delay(spec.delay);
    if (spec.ttl) job.ttl(spec.ttl);
    if (spec.removeOnComplete) job.removeOnComplete(true);
    job.save(err => {
      if (err) out({ error: String(err) });
      ids[i] = job.id;
      if (--left === 0) { out({ ids: ids }); queue.shutdown(1000, () => process.exit(0)); }
    });
  });
} else if (mode === 'process') {
  // Handler behaviour comes from the job's data: fail_first (an Error on the first attempt),
  // fail_always, steps (progress steps), result (returned).
  record();
  const expected = new Set(cfg.ids);
  const finished = new Set();
  queue.on('job complete', id => { finished.add(Number(id)); check(); });
  queue.on('job failed', id => { finished.add(Number(id)); check(); });
  function check() {
    if ([...expected].every(id => finished.has(id))) {
      setTimeout(() => finish(cfg.ids), 300);  // let the last events arrive
    }
  }
  // Start working once the event subscription is surely live, so no event is missed.
  setTimeout(() => queue.process(cfg.type, cfg.concurrency || 1, (job, done) => {
    const made = job.toJSON().attempts.made;
    const steps = job.data.steps || 0;
    for (let s = 1; s <= steps; s++) job.progress(s, steps, { step: s });
    job.log('node handled %s', job.id);
    setTimeout(() => {
      if (job.data.fail_always) return done(new Error('node always fails'));
      if (job.data.fail_first && made === 0) return done(new Error('node first try'));
      done(null, job.data.result === undefined ? { by: 'node' } : job.data.result);
    }, 20);
  }), 300);
  setTimeout(() => { out({ timeout: true }); finish(cfg.ids); }, cfg.timeout || 20000);
  out({ ready: true });
} else if (mode === 'watch') {
  record();
  // Wait until the subscription is live, then say so; stop on stdin close or after timeout.
  setTimeout(() => out({ ready: true }), 300);
  // The ids to report on arrive as a JSON array on stdin (known only after creating them).
  let input = '';
  process.stdin.on('data', chunk => { input += chunk; });
  process.stdin.on('end', () => setTimeout(() => finish(JSON.parse(input || '[]')), 300));
  setTimeout(() => { out({ timeout: true }); finish([]); }, cfg.timeout || 20000);
} else {
  console.error('mode must be create, process or watch');
  process.exit(2);
}
