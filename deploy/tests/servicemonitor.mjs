// Validates ServiceMonitors (a JSON array on standard input) against the Prometheus
// Operator's schema, as compiled by @kubernetes-models/prometheus-operator. The first
// argument is the node_modules directory it was installed into.
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
import { join } from "node:path";

const modules = process.argv[2];
const { ServiceMonitor } = await import(
  pathToFileURL(join(modules, "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor.js")).href
);
let failed = 0;
for (const object of JSON.parse(readFileSync(0, "utf8"))) {
  try {
    new ServiceMonitor(object).validate();
  } catch (e) {
    failed++;
    console.log(`ServiceMonitor ${object.metadata?.name}: ${e.message}`);
  }
}
process.exit(failed ? 1 : 0);
