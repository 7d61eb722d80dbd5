// Records what real Kue 0.11.6 writes to Redis when it saves a job, for tests/test_layout.py.
// Usage: KUE_NODE_MODULES=/path/to/node_modules REDIS_PORT=NNNN node record_kue_layout.js > out.json
// The Redis on REDIS_PORT must be a throwaway server: it is flushed before every scenario.
'use strict';
const path = require('path');
const modules = process.env.KUE_NODE_MODULES || process.argv[2];
const kue = require(path.join(modules, 'kue'));
const redis = require(path.join(modules, 'redis'));
const port = Number(process.env.REDIS_PORT);
if (!port || port === 6379) { console.error('set REDIS_PORT to a private server (not 6379)'); process.exit(2); }

// Each scenario: [name, disableSearch, build(queue) -> job]
const scenarios = [
  ['plain', true, q => q.create('email', { title: 'welcome email for tj', to: 'tj@learnboost.com' })],
  ['no_data', true, q => q.create('video')],
  ['all_options', true, q => q.create('email', { title: 'welcome email for tj', to: 'tj@learnboost.com' })
      .priority('high').attempts(5).backoff({ type: 'exponential', delay: 1000 }).delay(2000)
      .ttl(5000).removeOnComplete(true)],
  ['numeric_priority_fixed_backoff', true, q => q.create('email', { n: 1 }).priority(3)
      .backoff({ type: 'fixed', delay: 500 })],
  ['backoff_true_low', true, q => q.create('email', { n: 2 }).priority('low').backoff(true).attempts(2)],
  ['search_keys', false, q => q.create('email', { title: 'welcome email for tj', to: 'tj@learnboost.com' })
      .searchKeys(['to', 'title'])],
  ['search_all_data', false, q => q.create('email', { title: 'Welcome emails', body: 'Hello running dogs' })],
];

function dump(client, cb) {
  client.keys('*', (err, keys) => {
    if (err) return cb(err);
    const out = {};
    let left = keys.length;
    if (!left) return cb(null, out);
    keys.sort().forEach(key => {
      client.type(key, (e, type) => {
        const done = (e2, value) => { out[key] = { type, value }; if (--left === 0) cb(null, out); };
        if (type === 'string') client.get(key, done);
        else if (type === 'hash') client.hgetall(key, done);
        else if (type === 'list') client.lrange(key, 0, -1, done);
        else if (type === 'set') client.smembers(key, (e3, v) => done(e3, v.sort()));
        else if (type === 'zset') client.zrange(key, 0, -1, 'WITHSCORES', done);
        else done(null, null);
      });
    });
  });
}

const admin = redis.createClient(port, '127.0.0.1');
const results = {};
function run(i) {
  if (i >= scenarios.length) {
    process.stdout.write(JSON.stringify(results, null, 1) + '\n');
    process.exit(0);
  }
  const [name, disableSearch, build] = scenarios[i];
  admin.flushall(() => {
    const queue = kue.createQueue({ prefix: 'q', disableSearch, redis: { port, host: '127.0.0.1' } });
    const events = [];
    const sub = redis.createClient(port, '127.0.0.1');
    sub.subscribe('q:events');
    sub.on('message', (ch, msg) => events.push(JSON.parse(msg)));
    sub.on('subscribe', () => {
      const job = build(queue);
      job.save(err => {
        if (err) throw err;
        // reds indexes in parallel with save; give it and the events a moment to land.
        setTimeout(() => dump(admin, (e, keys) => {
          results[name] = { id: job.id, keys, events };
          sub.quit();
          queue.shutdown(100, () => run(i + 1));
        }), 300);
      });
    });
  });
}
run(0);
