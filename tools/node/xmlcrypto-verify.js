// Verifies an enveloped XML signature with npm xml-crypto against a given
// certificate (KeyInfo is not trusted) for amtsbote's signing interop tests.
// Prints "OK <n signed references>" and exits 0, or "FAIL <reason>" and exits 1.
// Usage: node tools/node/xmlcrypto-verify.js SIGNED.xml CERT.pem
"use strict";
const fs = require("fs");
const path = require("path");
const { SignedXml } = require(path.join(__dirname, "node_modules", "xml-crypto"));
const { DOMParser } = require(path.join(__dirname, "node_modules", "@xmldom", "xmldom"));

const [file, certFile] = process.argv.slice(2);
if (!certFile) {
  console.error("usage: xmlcrypto-verify.js SIGNED.xml CERT.pem");
  process.exit(2);
}
try {
  const xml = fs.readFileSync(file, "utf8");
  const doc = new DOMParser().parseFromString(xml, "application/xml");
  const sigs = doc.getElementsByTagNameNS("http://www.w3.org/2000/09/xmldsig#", "Signature");
  if (sigs.length !== 1) throw new Error(`${sigs.length} signatures`);
  const sig = new SignedXml({ publicCert: fs.readFileSync(certFile) });
  sig.loadSignature(sigs[0]);
  if (!sig.checkSignature(xml)) throw new Error("checkSignature returned false");
  const refs = sig.getSignedReferences();
  console.log(`OK ${refs.length}`);
} catch (e) {
  console.log(`FAIL ${e.message}`);
  process.exit(1);
}
