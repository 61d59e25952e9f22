#!/usr/bin/env node
// sha256-vectors.mjs checks the browser client's incremental SHA-256
// (createSHA256 in direct-upload.js) against known vectors (FIPS 180-4
// examples, NIST CAVS short messages) and against node:crypto on random
// data fed in random slices, including lengths around the 55/56/64-byte
// padding edges. Prints ONE JSON line {"checked":N,"failures":[...]}.

import { createHash, randomBytes } from "node:crypto";
import { createSHA256 } from "../../handler/assets/direct-upload.js";

const hex = (u8) => Buffer.from(u8).toString("hex");
const failures = [];
let checked = 0;
const check = (name, got, want) => {
  checked++;
  if (got !== want) failures.push({ name, got, want });
};
const enc = (s) => new TextEncoder().encode(s);

const vectors = [
  ["", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"],
  ["abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"],
  ["abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"],
  ["abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu",
    "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"],
];
for (const [msg, want] of vectors) check(JSON.stringify(msg).slice(0, 30), hex(createSHA256().update(enc(msg)).digest()), want);

// One million "a", fed in uneven slices.
{
  const h = createSHA256();
  const a = new Uint8Array(1000003).fill(0x61);
  let left = 1_000_000;
  for (let n = 1; left > 0; n = (n * 7 + 3) % 9973 + 1) {
    const k = Math.min(n, left);
    h.update(a.subarray(0, k));
    left -= k;
  }
  check("million a", hex(h.digest()), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

// Random data of every length 0..200 and some large ones, random slicing.
for (const len of [...Array(201).keys(), 4095, 4096, 4097, 65536 + 13, 3 * 1024 * 1024 + 5]) {
  const data = randomBytes(len);
  const h = createSHA256();
  for (let off = 0; off < len; ) {
    const k = Math.min(len - off, 1 + Math.floor(Math.random() * 300));
    h.update(new Uint8Array(data.buffer, data.byteOffset + off, k));
    off += k;
  }
  check(`random ${len}`, hex(h.digest()), createHash("sha256").update(data).digest("hex"));
}
process.stdout.write(JSON.stringify({ checked, failures }) + "\n");
