#!/usr/bin/env node
// A drover --serve handler in Node.js, no packages. Copy it and change handle().
//
//     drover-worker --job J --serve 2 --serve-inflight 16 -- node handler.js
//
// drover writes one JSON object a line on stdin (the first one says the protocol version) and
// reads one answer a line from stdout for each item, in any order: with --serve-inflight K a
// process holds K items at once, so async work overlaps. docs/handler-protocol.md has the rest.
"use strict";
const readline = require("readline");

class Permanent extends Error {} // an item that can never succeed: dead at once

// Your work for one item (item is undefined when the id is the item). Return its result (kept
// with drover submit --keep-results BYTES), throw Permanent to give up, anything else to retry.
async function handle(id, item) {
  if (id.startsWith("bad")) throw new Permanent(`refusing ${id}`);
  return { length: id.length };
}

let hello = null;
readline.createInterface({ input: process.stdin, crlfDelay: Infinity }).on("line", async (line) => {
  const msg = JSON.parse(line);
  if (hello === null) {
    hello = msg;
    if (hello.version !== 1) throw new Error(`unknown handler protocol: ${line}`);
    return;
  }
  let answer;
  try {
    answer = { id: msg.id, ok: true, result: await handle(msg.id, msg.item) };
  } catch (e) {
    answer = { id: msg.id, error: String(e.message || e), retry: !(e instanceof Permanent) };
  }
  process.stdout.write(JSON.stringify(answer) + "\n");
});
