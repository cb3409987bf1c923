// Signs an XML document with npm xml-crypto (enveloped, RSA-SHA256, reference to
// the root by its ID attribute) for amtsbote's signing interop tests.
// Usage: node tools/node/xmlcrypto-sign.js IN.xml KEY.pem CERT.pem OUT.xml [c14n|exc-c14n]
"use strict";
const fs = require("fs");
const path = require("path");
const { SignedXml } = require(path.join(__dirname, "node_modules", "xml-crypto"));

const [inFile, keyFile, certFile, outFile, mode] = process.argv.slice(2);
if (!outFile) {
  console.error("usage: xmlcrypto-sign.js IN.xml KEY.pem CERT.pem OUT.xml [c14n|exc-c14n]");
  process.exit(2);
}
const c14n =
  mode === "exc-c14n"
    ? "http://www.w3.org/2001/10/xml-exc-c14n#"
    : "http://www.w3.org/TR/2001/REC-xml-c14n-20010315";
const sig = new SignedXml({
  privateKey: fs.readFileSync(keyFile),
  publicCert: fs.readFileSync(certFile),
  signatureAlgorithm: "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
  canonicalizationAlgorithm: c14n,
});
sig.addReference({
  xpath: "/*",
  digestAlgorithm: "http://www.w3.org/2001/04/xmlenc#sha256",
  transforms: ["http://www.w3.org/2000/09/xmldsig#enveloped-signature", c14n],
});
sig.computeSignature(fs.readFileSync(inFile, "utf8"), {
  prefix: "ds",
  location: { reference: "/*", action: "append" },
});
fs.writeFileSync(outFile, sig.getSignedXml());
console.log("SIGNED");
