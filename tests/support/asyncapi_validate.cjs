// Validate an AsyncAPI document with the official parser (@asyncapi/parser).
// usage: node asyncapi_validate.cjs PARSER_DIR DOCUMENT
// Prints one JSON line per diagnostic, then {"parsed": bool, "version": ...}.
const { createRequire } = require('node:module');
const { readFileSync } = require('node:fs');
const path = require('node:path');

const requireFromCache = createRequire(path.join(process.argv[2], 'package.json'));
const { Parser } = requireFromCache('@asyncapi/parser');
const severities = ['error', 'warning', 'info', 'hint'];

(async () => {
  const { document, diagnostics } = await new Parser().parse(readFileSync(process.argv[3], 'utf8'));
  for (const d of diagnostics) {
    console.log(JSON.stringify({
      severity: severities[d.severity], code: d.code, message: d.message, path: d.path.join('/'),
    }));
  }
  console.log(JSON.stringify({ parsed: document !== undefined, version: document?.version() }));
})();
