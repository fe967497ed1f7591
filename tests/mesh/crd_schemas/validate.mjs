// Validates Kubernetes objects against the kubernetes-models packages' JSON-schema validators.
// stdin: a JSON array of objects; stdout: a JSON array, per object null (valid) or the error text.
// An object whose apiVersion/kind no installed package models gets "no schema for ...".
import { readFileSync } from "node:fs";

const PACKAGES = [
  [/\.istio\.io$/, "@kubernetes-models/istio"],
  [/^gateway\.networking\.k8s\.io$/, "@kubernetes-models/gateway-api"],
];

async function modelFor(apiVersion, kind) {
  const [group, version] = apiVersion.split("/");
  const entry = PACKAGES.find(([pattern]) => pattern.test(group));
  if (!entry) return null;
  try {
    const module = await import(`${entry[1]}/${group}/${version}/${kind}`);
    return module[kind] ?? null;
  } catch {
    return null;
  }
}

const objects = JSON.parse(readFileSync(0, "utf8"));
const results = [];
for (const object of objects) {
  const Model = await modelFor(object.apiVersion, object.kind);
  if (!Model) {
    results.push(`no schema for ${object.apiVersion} ${object.kind}`);
    continue;
  }
  try {
    new Model(object).validate();
    results.push(null);
  } catch (error) {
    results.push(String(error.message ?? error));
  }
}
process.stdout.write(JSON.stringify(results));
