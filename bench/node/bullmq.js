// The BullMQ side of bench/run: the same no-op work as `drover-worker --handler noop`.
//   node bullmq.js work PORT CONCURRENCY
//     a Worker on queue "bench" whose processor does nothing; prints "ready" once connected,
//     then runs until SIGTERM (closes the worker, exits 0)
//   node bullmq.js produce PORT N CHUNK
//     adds N jobs ({"id": i}, i = 1..N) with Queue.addBulk in chunks of CHUNK, then polls the
//     completed and failed counts every 20 ms until they add up to N; prints
//     {"added":N,"completed":C,"failed":F}
// Default job options: removeOnComplete and removeOnFail false, so completed jobs stay in Redis
// (their hashes and the completed ZSET), as BullMQ keeps them unless told otherwise.
'use strict';
const { Queue, Worker } = require('bullmq');

const [mode, portArg, ...rest] = process.argv.slice(2);
const connection = { host: '127.0.0.1', port: Number(portArg), maxRetriesPerRequest: null };

function usage() {
    process.stderr.write('usage: node bullmq.js work PORT CONCURRENCY | produce PORT N CHUNK\n');
    process.exit(2);
}

async function work(concurrency) {
    const worker = new Worker('bench', async () => {}, { connection, concurrency });
    worker.on('error', (err) => process.stderr.write(`bullmq worker: ${err.message}\n`));
    await worker.waitUntilReady();
    process.stdout.write('ready\n');
    process.on('SIGTERM', async () => {
        await worker.close();
        process.exit(0);
    });
}

async function produce(n, chunk) {
    const queue = new Queue('bench', { connection });
    for (let i = 1; i <= n; i += chunk) {
        const jobs = [];
        for (let j = i; j < i + chunk && j <= n; j++) jobs.push({ name: 'item', data: { id: j } });
        await queue.addBulk(jobs);
    }
    // A job BullMQ failed (e.g. "job stalled more than allowable limit": its worker could not
    // renew the lock in time on a loaded machine) will not complete: count it as finished.
    let counts;
    for (;;) {
        counts = await queue.getJobCounts('completed', 'failed');
        if (counts.completed + counts.failed >= n) break;
        await new Promise((r) => setTimeout(r, 20));
    }
    process.stdout.write(JSON.stringify({ added: n, completed: counts.completed, failed: counts.failed }) + '\n');
    await queue.close();
}

if (mode === 'work' && rest.length === 1) {
    work(Number(rest[0])).catch((e) => {
        process.stderr.write(`bullmq worker: ${e.stack}\n`);
        process.exit(1);
    });
} else if (mode === 'produce' && rest.length === 2) {
    produce(Number(rest[0]), Number(rest[1])).catch((e) => {
        process.stderr.write(`bullmq producer: ${e.stack}\n`);
        process.exit(1);
    });
} else {
    usage();
}
