// node under the allocator (tests/test_programs.py): what V8 and node ask of malloc. ArrayBuffer backing stores
// (Buffer.alloc: a malloc each, freed when V8's collector finds them dead, so many at once and in no order), each
// 1000 bytes larger than the last, across the 128 KiB mmap threshold: the pattern that made osmem map and fault
// in every one of them afresh (growth/big_request_takes_free_heap_block). zlib's streams (their windows and
// states), strings and Maps of the heap, and worker threads that allocate at the same time and hand buffers to
// the main thread (moved, not copied: freed by another thread than the one that allocated them). Prints checksums
// only: the same lines under every allocator.
'use strict';
const zlib = require('zlib');
const crypto = require('crypto');
const { Worker, isMainThread, parentPort, workerData } = require('worker_threads');

function digest(buf) { return crypto.createHash('sha256').update(buf).digest('hex').slice(0, 16); }

function buffers(rounds) {
	let h = crypto.createHash('sha256');
	for (let i = 0; i < rounds; i++) {
		const b = Buffer.alloc(100000 + i * 1000, i & 0xff);
		b.writeUInt32LE(i, b.length - 4);
		const z = zlib.gzipSync(b, { level: 1 });
		const back = zlib.gunzipSync(z);
		if (!back.equals(b)) throw new Error('gunzip lost bytes at round ' + i);
		h.update(z.subarray(0, 32)).update(String(back.length));
	}
	return h.digest('hex').slice(0, 16);
}

function objects(n) {
	const m = new Map();
	for (let i = 0; i < n; i++)
		m.set('k' + i, { i, s: 'v'.repeat(i % 300), a: [i, i * 2, String(i)] });
	for (let i = 0; i < n; i += 3)
		m.delete('k' + i);
	let sum = 0;
	for (const [k, v] of m)
		sum = (sum + v.i * 31 + v.s.length + k.length) % 1000000007;
	return JSON.stringify([...m.values()].slice(0, 1000)).length + ':' + sum;
}

if (isMainThread) {
	const out = [];
	out.push('buffers ' + buffers(200));
	out.push('objects ' + objects(300000));
	const workers = [0, 1, 2].map(id => new Promise((resolve, reject) => {
		const w = new Worker(__filename, { workerData: { id } });
		const got = [];
		w.on('message', m => got.push(digest(Buffer.from(m))));
		w.on('error', reject);
		w.on('exit', code => code === 0 ? resolve(id + ' ' + got.length + ' ' + digest(got.join(','))) :
		                                  reject(new Error('worker exit ' + code)));
	}));
	Promise.all(workers).then(r => {
		for (const line of r)
			out.push('worker ' + line);
		console.log(out.join('\n'));
	}, e => { console.error(e); process.exit(1); });
} else {
	const { id } = workerData;
	for (let i = 0; i < 60; i++) {
		const b = Buffer.alloc(20000 + ((i * 7919 + id * 104729) % 300000), (i + id) & 0xff);
		const z = zlib.deflateSync(b);
		const ab = new ArrayBuffer(z.length);
		new Uint8Array(ab).set(z);
		parentPort.postMessage(ab, [ab]); // moved to the main thread, freed there
	}
	objects(20000 + id * 1000);
}
