#!/usr/bin/env node
/*
 * Generates tests/fixtures/reds_codes.json: ground truth for lua/lib/search.lua,
 * computed with the real reds 0.2.5 / natural 0.2.1 that kue 0.11.6 installs.
 *
 * Usage:
 *   (cd /some/dir && npm install kue@0.11.6)
 *   node tests/tools/gen_reds_fixture.js /some/dir/node_modules [out.json]
 * or set KUE_NODE_MODULES=/some/dir/node_modules instead of the first argument.
 * The default output is tests/fixtures/reds_codes.json next to this tools/ folder.
 *
 * For every word: reds' stopword test, natural PorterStemmer.stem, natural
 * Metaphone.process (of the word and of its stem).
 * For every phrase: reds.stem(reds.stripStopWords(reds.words(text))), the query
 * codes (reds.metaphoneArray, what Query ZINTERSTOREs) and the ZADDs index()
 * issues, in the order it issues them, plus the resulting code -> score state.
 */
'use strict';

var path = require('path');
var fs = require('fs');

var nm = process.argv[2] || process.env.KUE_NODE_MODULES;
if (!nm) {
  console.error('usage: gen_reds_fixture.js <kue node_modules dir> [out.json]  (or KUE_NODE_MODULES=...)');
  process.exit(2);
}
nm = path.resolve(nm);
var out = process.argv[3] || path.join(__dirname, '..', 'fixtures', 'reds_codes.json');

// Resolve reds the way kue does, then natural the way reds does (either may be nested).
var kueDir = path.join(nm, 'kue');
var redsPath = require.resolve('reds', { paths: [kueDir, nm] });
var redsDir = path.dirname(path.dirname(redsPath)); // .../reds/index.js -> .../reds
var naturalPath = require.resolve('natural', { paths: [redsDir] });
var reds = require(redsPath);
var natural = require(naturalPath);

function pkgVersion(mainFile, name) {
  var dir = path.dirname(mainFile);
  while (dir !== path.dirname(dir)) {
    var p = path.join(dir, 'package.json');
    if (fs.existsSync(p)) {
      var pkg = JSON.parse(fs.readFileSync(p, 'utf8'));
      if (pkg.name === name) return pkg.version;
    }
    dir = path.dirname(dir);
  }
  return null;
}
var versions = {
  kue: pkgVersion(require.resolve('kue', { paths: [nm] }), 'kue'),
  reds: pkgVersion(redsPath, 'reds'),
  natural: pkgVersion(naturalPath, 'natural')
};
if (versions.reds !== '0.2.5' || versions.natural !== '0.2.1') {
  console.error('expected reds 0.2.5 + natural 0.2.1, got', versions);
  process.exit(1);
}

var stem = natural.PorterStemmer.stem;
var metaphone = natural.Metaphone.process;
var stopwords = natural.stopwords;

// ---------------------------------------------------------------- words
var WORDS = [
  // Porter paper / step 1a-1c examples
  'caresses', 'ponies', 'ties', 'caress', 'cats', 'feed', 'agreed', 'plastered', 'bled',
  'motoring', 'sing', 'conflated', 'troubled', 'sized', 'hopping', 'tanned', 'falling',
  'hissing', 'fizzed', 'failing', 'filing', 'happy', 'sky', 'say', 'toy', 'syzygy', 'by',
  // step 2
  'relational', 'conditional', 'rational', 'valenci', 'hesitanci', 'digitizer', 'conformabli',
  'radicalli', 'differentli', 'vileli', 'analogousli', 'vietnamization', 'predication',
  'operator', 'feudalism', 'decisiveness', 'hopefulness', 'callousness', 'formaliti',
  'sensitiviti', 'sensibiliti', 'generational', 'sensational', 'organization', 'realization',
  'globalization', 'civilization', 'visualization', 'optimization', 'authorization',
  'standardization', 'tradition', 'national', 'emotional', 'valency', 'agency', 'fluency',
  'tendency', 'probably', 'possibly', 'terribly', 'finally', 'really', 'totally', 'gently',
  'currently', 'recently', 'closely', 'famously', 'biology', 'apology', 'technology',
  // step 3
  'triplicate', 'formative', 'formalize', 'electriciti', 'electrical', 'hopeful', 'goodness',
  'duplicate', 'sensitive', 'normalize', 'critical', 'grateful', 'kindness', 'darkness',
  // step 4
  'revival', 'allowance', 'inference', 'airliner', 'gyroscopic', 'adjustable', 'defensible',
  'irritant', 'replacement', 'adjustment', 'dependent', 'adoption', 'homologou', 'communism',
  'activate', 'angulariti', 'homologous', 'effective', 'bowdlerize', 'element', 'cement',
  'comment', 'government', 'statement', 'excitement', 'confusion', 'extension', 'collection',
  'question', 'ion', 'lion', 'nation', 'station', 'session', 'mission', 'vision', 'version',
  // step 5
  'probate', 'rate', 'cease', 'controll', 'roll', 'generate', 'create', 'hope', 'file', 'fire',
  'sense', 'pale', 'care', 'love', 'move', 'wave', 'axe',
  // -ies / -ing / -ed / plurals
  'flies', 'dies', 'lies', 'cries', 'studies', 'cities', 'libraries', 'queries', 'replies',
  'entries', 'series', 'species', 'running', 'jumping', 'swimming', 'sitting', 'getting',
  'putting', 'hitting', 'shopping', 'stopping', 'writing', 'making', 'taking', 'coming',
  'seeing', 'being', 'doing', 'going', 'thing', 'nothing', 'morning', 'evening', 'king',
  'ring', 'bring', 'string', 'spring', 'during', 'sending', 'processing', 'queueing',
  'queuing', 'failed', 'completed', 'delayed', 'inactive', 'active', 'retried', 'removed',
  'jobs', 'emails', 'videos', 'boxes', 'glasses', 'buses', 'classes', 'gas', 'has', 'was',
  'this', 'is', 'us', 'bus', 'yes', 'less', 'loss', 'boss', 'process', 'access', 'success',
  // double consonants / dedup
  'bottle', 'letter', 'coffee', 'committee', 'mississippi', 'balloon', 'address', 'accept',
  'accident', 'success', 'occur', 'occurred', 'dinner', 'summer', 'hammer', 'rubber',
  'apple', 'little', 'middle', 'puzzle', 'fuzzy', 'buzz', 'jazz', 'pizza', 'www', 'aaa',
  'aaaa', 'zzz', 'eee', 'kk',
  // ph / gh / sch / x / wh / leading kn gn pn ae wr
  'phone', 'photo', 'physics', 'graph', 'alphabet', 'elephant', 'sophia', 'shepherd',
  'uphill', 'laugh', 'tough', 'night', 'light', 'ghost', 'ghetto', 'high', 'through',
  'thought', 'daughter', 'enough', 'cough', 'weigh', 'eight', 'neighbor', 'gnome', 'gnat',
  'sign', 'signed', 'design', 'designed', 'reign', 'foreign', 'campaign', 'align', 'aligned',
  'school', 'schedule', 'scheme', 'schema', 'schwa', 'scholar', 'fresh', 'dish', 'fish',
  'xylophone', 'xray', 'xerox', 'box', 'fox', 'taxi', 'exact', 'example', 'excel', 'max',
  'what', 'when', 'whale', 'wheel', 'white', 'whisper', 'why', 'who', 'whom', 'whose',
  'wharf', 'knife', 'know', 'knight', 'knee', 'knot', 'pneumonia', 'pneumatic', 'aerial',
  'aesthetic', 'aeon', 'write', 'wrong', 'wrap', 'wrist', 'wreck',
  // tia / tio / ch / sh / th / tch / ck / dge / mb / c transforms
  'ratio', 'patio', 'initial', 'martial', 'partial', 'nation', 'potion', 'church', 'chair',
  'chicken', 'chemistry', 'character', 'choir', 'chrome', 'school', 'scheme', 'mechanic',
  'machine', 'schism', 'archive', 'ache', 'ship', 'shop', 'shell', 'wash', 'push', 'the',
  'think', 'thin', 'three', 'with', 'math', 'bath', 'both', 'thither', 'thatch', 'match',
  'watch', 'kitchen', 'catch', 'butcher', 'back', 'black', 'check', 'quick', 'stick',
  'clock', 'jackson', 'edge', 'bridge', 'judge', 'budget', 'fudgy', 'dodgy', 'badge',
  'lodging', 'knowledge', 'lamb', 'climb', 'thumb', 'dumb', 'tomb', 'bomb', 'plumber',
  'number', 'cent', 'city', 'cycle', 'social', 'special', 'glacier', 'ocean', 'cat', 'cut',
  'cocoa', 'science', 'scissors', 'success', 'accident', 'accent',
  // g transforms
  'giant', 'gym', 'gem', 'age', 'page', 'large', 'egg', 'bigger', 'logging', 'doggy',
  'suggest', 'exaggerate', 'gig', 'go', 'good', 'big', 'bag', 'agile', 'agenda', 'tiger',
  // h / w / y dropping
  'ahead', 'behind', 'oh', 'hah', 'hello', 'hurry', 'house', 'yahoo', 'yes', 'yellow',
  'young', 'yoyo', 'day', 'play', 'boy', 'eye', 'bye', 'crazy', 'way', 'away', 'window',
  'snow', 'new', 'view', 'vowel', 'bowl', 'water', 'wow',
  // s / q / v / z / misc consonants
  'shion', 'vision', 'asia', 'persia', 'mansion', 'queen', 'quite', 'quality', 'unique',
  'iraq', 'very', 'vivid', 'valve', 'zoo', 'zero', 'zebra', 'lazy', 'jazz', 'pizzazz',
  'buzzword',
  // capitalised / mixed / upper
  'Welcome', 'Email', 'TJ', 'Tj', 'tj', 'LearnBoost', 'JavaScript', 'Node', 'NODE', 'Redis',
  'REDIS', 'Kue', 'KUE', 'McDonald', 'iPhone', 'eBay', 'XML', 'HTTP', 'URL', 'Ph', 'PH',
  'Ok', 'OK', 'Ox', 'QA', 'Wh', 'The', 'For', 'AND', 'Is', 'A', 'I', 'Constructor',
  // digits / underscores / alnum
  '0', '1', '9', '10', '42', '007', '123', '2024', '3d', '4a', '44', '44a', 'a4', 'mp3',
  'h264', 'x86', 'x86_64', 'ipv6', '1st', '2nd', '3rd', '4th', 'foo_bar', '_', '__',
  '_private', 'snake_case_name', 'job_id', 'user_42', '__proto__', 'constructor',
  'toString', 'valueOf', 'hasOwnProperty', 'prototype', '1e10', '0x1f', '1_000',
  // stopwords and near-stopwords
  'about', 'after', 'all', 'also', 'am', 'an', 'and', 'another', 'any', 'are', 'as', 'at',
  'be', 'because', 'been', 'for', 'from', 'into', 'of', 'on', 'or', 'other', 'our', 'over',
  'said', 'same', 'through', 'to', 'too', 'under', 'up', 'we', 'what', 'where', 'which',
  'you', 'your', 'abouts', 'others', 'everything', 'nowhere', 'somewhere', 'therefore',
  // general vocabulary
  'welcome', 'email', 'emails', 'learnboost', 'video', 'conversion', 'convert', 'encoding',
  'encoder', 'transcode', 'upload', 'download', 'image', 'images', 'thumbnail', 'resize',
  'report', 'reports', 'invoice', 'payment', 'payments', 'customer', 'customers', 'order',
  'orders', 'shipping', 'notification', 'notifications', 'newsletter', 'subscriber',
  'subscription', 'account', 'accounts', 'password', 'reset', 'verify', 'verification',
  'worker', 'workers', 'queue', 'queues', 'priority', 'priorities', 'attempts', 'backoff',
  'exponential', 'timeout', 'progress', 'complete', 'completion', 'failure', 'error',
  'errors', 'stack', 'trace', 'database', 'server', 'client', 'cluster', 'network',
  'internet', 'computer', 'software', 'hardware', 'keyboard', 'monitor', 'engineer',
  'engineering', 'manager', 'management', 'developer', 'development', 'happiness',
  'sadness', 'beautiful', 'beauty', 'wonderful', 'generous', 'generosity', 'curiosity',
  'university', 'community', 'opportunity', 'responsibility', 'possibility',
  'international', 'relationship', 'information', 'communication', 'documentation',
  'application', 'applications', 'configuration', 'environment', 'performance',
  'experience', 'independence', 'difference', 'conference', 'reference', 'preference',
  'assistance', 'resistance', 'importance', 'ignorance', 'dependency', 'frequency',
  'efficiency', 'emergency', 'consistency', 'discrepancy', 'dictionary', 'vocabulary',
  'library', 'category', 'factory', 'history', 'memory', 'story', 'glory', 'theory',
  'energy', 'strategy', 'psychology', 'psychic', 'psalm', 'rhythm', 'rhyme', 'honest',
  'hour', 'heir', 'island', 'debt', 'doubt', 'receipt', 'salmon', 'yacht', 'colonel',
  'choir', 'bouquet', 'ballet', 'cafe', 'naive', 'resume', 'cliche', 'facade',
  'generalization', 'generalizations', 'hospitalization', 'conditionally', 'additionally',
  'traditionally', 'operational', 'sensationalism', 'meaningfulness', 'carefulness',
  'restlessness', 'abruptness', 'activities', 'capabilities', 'possibilities',
  'connect', 'connected', 'connecting', 'connection', 'connections', 'connective',
  'connectivity', 'argue', 'argued', 'argues', 'arguing', 'argus', 'argument', 'generic',
  'generically', 'generalities', 'general', 'generally', 'generator', 'generators',
  'oed', 'eed', 'ed', 'ing', 'ies', 'sses', 'ss', 'es', 'ly', 'yy', 'aye', 'ay',
  'bya', 'mya', 'hyena', 'beyond', 'crying', 'dying', 'lying', 'tying', 'played',
  'enjoyed', 'destroyed', 'fixed', 'mixed', 'boxed', 'taxed', 'snowed', 'showed',
  'hoped', 'hopped', 'tapped', 'taped', 'filed', 'filled', 'fitted', 'fated', 'abated',
  'ablated', 'sized', 'seized', 'feeling', 'seeded', 'needed', 'proceed', 'succeed',
  'exceed', 'bleed', 'speed', 'greed', 'breed', 'embed', 'embedded', 'shed', 'bed',
  'wanted', 'tobi', 'wants', 'dollars', 'ferret', 'ferrets', 'loki', 'jane', 'manny',
  'agige', 'chch', 'cchh', 'sch', 'scch', 'xhxh', 'ghgh', 'ghghx', 'ahah', 'ahh', 'wwx',
  'gned', 'gn', 'mb', 'wh', 'whh', 'tch', 'tth', 'thth', 'zz', 'zaz', 'sia', 'sio',
  'tiatio', 'cia', 'ciacia', 'dge', 'dgy', 'dgi', 'cc', 'ccc', 'cce', 'ccia', 'yw', 'wy',
  'hy', 'hw', 'yhy', 'ywy', 'e', 'ee', 'ye'
];

// Remove duplicates while keeping the first position.
var seen = {};
WORDS = WORDS.filter(function (w) {
  if (Object.prototype.hasOwnProperty.call(seen, w)) return false;
  seen[w] = true;
  return true;
});

// ---------------------------------------------------------------- phrases
var PHRASES = [
  'tj@learnboost.com',
  'welcome email for tj',
  '{"to":"tj@learnboost.com","title":"welcome email for tj"}',
  'Welcome email for TJ',
  'TJ tj tj',
  'tj tj TJ',
  'Email email EMAIL emails',
  'the quick brown fox jumps over the lazy dog',
  'The Quick Brown Fox Jumps Over The Lazy Dog again and again',
  'a an the of to for is it',
  '',
  '   ',
  '!!! ??? ... --- @@@',
  'x86_64 build of node v0.10.48 failed with error code 127',
  '44a 44 44',
  '44 44a 44a',
  '007 7 07 700 4294967294 4294967295 4294967296 123 123',
  'phone fone phones foned',
  'night knight knights nite',
  'write right writes rite wright',
  'caresses ponies ties caress cats',
  'relational conditional rational national',
  'organization organizations organize organizer organized',
  'happy happiness happily happier',
  'connect connected connecting connection connections',
  'why why why who whom',
  'constructor constructor email',
  '__proto__ __proto__ tj',
  'hasOwnProperty toString valueOf prototype',
  'snake_case_name job_id user_42 _private __',
  'mississippi missouri massachusetts',
  'schedule school scheme schema schwa',
  'judge bridge edge dodgy fudgy knowledge',
  'lamb climb thumb plumber number',
  'ratio patio nation station initial',
  'church chair chicken character choir',
  'café naïve résumé über straße',
  'job 1 of 10: convert video_42.mp4 -> h264 720p (priority high)',
  '{"title":"Video conversion","user":1,"frames":1200,"file":"/tmp/video_42.mp4"}',
  'SEND email to customer@example.org about invoice #1234 payment failed',
  'Error: ECONNREFUSED 127.0.0.1:6379 at TCPConnectWrap.afterConnect',
  'undefined null true false NaN Infinity'
];

// ---------------------------------------------------------------- compute
function wordEntry(w) {
  var st = stem(w);
  return {
    word: w,
    stopword: stopwords.indexOf(w) !== -1,
    stem: st,
    metaphone: metaphone(w),
    stem_metaphone: metaphone(st)
  };
}

// What Search.prototype.index(str, id) sends, replicated from reds 0.2.5
// lib/reds.js with its own exported helpers:
//   words = stem(stripStopWords(words(str)))
//   counts = countWords(words); map = metaphoneMap(words)
//   for each word of Object.keys(map): ZADD word:<map[w]> counts[w] id; ZADD object:<id> counts[w] map[w]
// Object.keys puts integer-like keys ("44", "123") first, ascending, then the
// rest in insertion order. A "__proto__" word never becomes an own key. For
// "constructor", countWords yields the string "function Object() { [native code] }1"
// (it starts from the inherited Object constructor), which Redis rejects as a
// score, so both ZADDs for it fail inside the MULTI while the others succeed.
function phraseEntry(text) {
  var words = reds.stem(reds.stripStopWords(reds.words(text)));
  var counts = reds.countWords(words);
  var map = reds.metaphoneMap(words);
  var zadds = [];
  var failed = [];
  Object.keys(map).forEach(function (w) {
    var score = counts[w];
    if (typeof score === 'number') zadds.push({ word: w, code: map[w], score: score });
    else failed.push({ word: w, code: map[w], score: String(score) });
  });
  // Final state after the ZADDs: one score per code, later ZADDs overwrite.
  var codes = [];
  var scores = {};
  zadds.forEach(function (z) {
    if (!Object.prototype.hasOwnProperty.call(scores, z.code)) codes.push(z.code);
    scores[z.code] = z.score;
  });
  return {
    text: text,
    words: words,
    query_codes: reds.metaphoneArray(words),
    zadds: zadds,
    failed_zadds: failed,
    index: codes.map(function (c) { return [c, scores[c]]; })
  };
}

var fixture = {
  comment: 'Generated by tests/tools/gen_reds_fixture.js from the reds/natural installed with kue 0.11.6. Do not edit by hand.',
  versions: versions,
  stopwords: stopwords.slice(),
  words: WORDS.map(wordEntry),
  phrases: PHRASES.map(phraseEntry)
};

fs.writeFileSync(out, JSON.stringify(fixture, null, 1) + '\n');
console.log('wrote ' + out + ': ' + fixture.words.length + ' words, ' + fixture.phrases.length + ' phrases');
