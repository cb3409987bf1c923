#!/usr/bin/env node
// Computes and checks FIT-Connect's callback-authentication with Node's own crypto
// (HMAC-SHA512, lowercase hex, over callback-timestamp + "." + body, keyed with the
// callback secret string as configured), independently of amtsbote's Go code.
//
// Usage (from the repo root):
//   node tools/node/standardwebhooks-fitconnect.js --secret-file S --headers-file H.json --body-file B
// Prints the computed MAC on stdout. Exit 0: it equals the callback-authentication
// header; 1: it does not; 2: usage error.
"use strict";
const crypto = require("crypto");
const fs = require("fs");

function usage(msg) {
  process.stderr.write(`standardwebhooks-fitconnect: ${msg}\n`);
  process.exit(2);
}

const a = {};
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i += 2) {
  if (!argv[i].startsWith("--") || argv[i + 1] === undefined) usage(`bad argument ${argv[i]}`);
  a[argv[i].slice(2)] = argv[i + 1];
}
let secret = process.env.WEBHOOK_SECRET;
if (a["secret-file"]) secret = fs.readFileSync(a["secret-file"], "utf8").trim();
if (!secret) usage("no secret (--secret-file or WEBHOOK_SECRET)");
if (!a["headers-file"] || !a["body-file"]) usage("--headers-file and --body-file are required");

const raw = JSON.parse(fs.readFileSync(a["headers-file"], "utf8"));
const headers = {};
for (const k of Object.keys(raw)) headers[k.toLowerCase()] = String(raw[k]);
const ts = headers["callback-timestamp"];
const given = headers["callback-authentication"] || "";
if (!ts) usage("no callback-timestamp header");
const body = fs.readFileSync(a["body-file"] === "-" ? 0 : a["body-file"]);

const mac = crypto.createHmac("sha512", Buffer.from(secret, "utf8"))
  .update(Buffer.concat([Buffer.from(ts + ".", "utf8"), body]))
  .digest("hex");
process.stdout.write(mac + "\n");
const ok = given.length === mac.length &&
  crypto.timingSafeEqual(Buffer.from(given, "utf8"), Buffer.from(mac, "utf8"));
process.exit(ok ? 0 : 1);
