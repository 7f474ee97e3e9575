// Validates Prometheus Operator resources (PodMonitor, PrometheusRule, ...) against the
// schemas of the operator's API types as shipped by the npm package
// @kubernetes-models/prometheus-operator (installed by scripts/test.sh).
// Usage: node validate_operator_crds.mjs <node_modules dir> < documents.json
// stdin: a JSON array of resources; prints one line per resource, exits 1 if any is invalid.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const [modules] = process.argv.slice(2);
const documents = JSON.parse(readFileSync(0, "utf8"));
let failed = 0;
for (const document of documents) {
  const [group, version] = document.apiVersion.split("/");
  const file = join(modules, "@kubernetes-models/prometheus-operator", group, version, `${document.kind}.js`);
  const module = await import(pathToFileURL(file).href);
  const name = `${document.kind}/${document.metadata?.name}`;
  try {
    new module[document.kind](document).validate();
    console.log(`valid ${name}`);
  } catch (error) {
    failed += 1;
    console.log(`invalid ${name}: ${error.message}`);
  }
}
process.exit(failed ? 1 : 0);
