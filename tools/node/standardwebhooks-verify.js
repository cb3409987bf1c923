#!/usr/bin/env node
// Verifies one captured webhook request with the Standard Webhooks reference library
// (npm "standardwebhooks"), as an office's Node.js system would. amtsbote's interop
// test runs it on a real request the Go adapter sent.
//
// Usage (from the repo root):
//   node tools/node/standardwebhooks-verify.js --secret-file S --headers-file H.json --body-file B
//   (--body-file - reads the body from stdin; the secret may also come from the
//    environment variable WEBHOOK_SECRET, never from argv, so it stays out of ps.)
// H.json is an object of header name -> value. Exit 0: verified; 1: rejected;
// 2: usage or setup error (e.g. the module is not installed).
"use strict";
const fs = require("fs");
const path = require("path");

function usage(msg) {
  process.stderr.write(`standardwebhooks-verify: ${msg}\n`);
  process.exit(2);
}

function args(argv) {
  const out = {};
  for (let i = 0; i < argv.length; i += 2) {
    const k = argv[i];
    const v = argv[i + 1];
    if (!k.startsWith("--") || v === undefined) usage(`bad argument ${k}`);
    out[k.slice(2)] = v;
  }
  return out;
}

let Webhook;
try {
  // Resolve next to this script so the test does not depend on the caller's cwd.
  ({ Webhook } = require(path.join(__dirname, "node_modules", "standardwebhooks")));
} catch (e) {
  usage(`cannot load npm module standardwebhooks (run npm ci in tools/node): ${e.message}`);
}

const a = args(process.argv.slice(2));
let secret = process.env.WEBHOOK_SECRET;
if (a["secret-file"]) secret = fs.readFileSync(a["secret-file"], "utf8").trim();
if (!secret) usage("no secret (--secret-file or WEBHOOK_SECRET)");
if (!a["headers-file"]) usage("--headers-file is required");
if (!a["body-file"]) usage("--body-file is required");
const headers = JSON.parse(fs.readFileSync(a["headers-file"], "utf8"));
// The signature covers the exact bytes; read them as a Buffer, never re-serialise.
const body = fs.readFileSync(a["body-file"] === "-" ? 0 : a["body-file"]);

try {
  const payload = new Webhook(secret).verify(body, headers);
  process.stdout.write(`verified webhook-id=${headers["webhook-id"]} type=${payload && payload.type}\n`);
  process.exit(0);
} catch (e) {
  process.stdout.write(`rejected: ${e.name}: ${e.message}\n`);
  process.exit(1);
}
