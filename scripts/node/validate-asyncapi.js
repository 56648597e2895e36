// Validates an AsyncAPI document with the AsyncAPI project's own parser.
// Usage: node validate-asyncapi.js FILE   (exit 0: valid; 1: the diagnostics on stderr)
const fs = require("fs");
const { Parser } = require("@asyncapi/parser");

async function main() {
  const text = fs.readFileSync(process.argv[2], "utf8");
  const { document, diagnostics } = await new Parser().parse(text);
  const errors = diagnostics.filter((d) => d.severity === 0);
  for (const d of diagnostics) {
    const where = d.path.join(".");
    console.error(`${["error", "warning", "info", "hint"][d.severity]} ${where}: ${d.message}`);
  }
  if (document === undefined || errors.length > 0) {
    process.exit(1);
  }
  console.log(`valid AsyncAPI ${document.version()}: ${document.channels().length} channels, ` +
    `${document.operations().length} operations, ${document.components().messages().length} messages`);
}

main().catch((err) => { console.error(err); process.exit(1); });
