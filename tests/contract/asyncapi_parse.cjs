// Validate an AsyncAPI document with the AsyncAPI project's own parser.
// Usage: node asyncapi_parse.cjs DOCUMENT (NODE_PATH names the parser's node_modules).
// Prints {"valid", "errors", "warnings"} as JSON; exits 1 when the document is invalid.
const fs = require("node:fs");
const { Parser } = require("@asyncapi/parser");

async function main() {
  const parser = new Parser();
  const { document, diagnostics } = await parser.parse(fs.readFileSync(process.argv[2], "utf8"));
  const pick = (severity) =>
    diagnostics
      .filter((d) => d.severity === severity)
      .map((d) => ({ code: d.code, message: d.message, path: d.path.join("/") }));
  const errors = pick(0);
  const valid = document !== undefined && errors.length === 0;
  console.log(JSON.stringify({ valid, errors, warnings: pick(1) }));
  process.exit(valid ? 0 : 1);
}

main().catch((error) => {
  console.log(JSON.stringify({ valid: false, errors: [{ message: String(error) }], warnings: [] }));
  process.exit(1);
});
