// Validates Kubernetes and Istio manifests offline against the published
// schemas (@kubernetes-models/istio: Istio's CRDs; kubernetes-models: the
// core API), for tests/test_mesh.py.
//
//   node validate.mjs FILE.yaml...
//
// Prints one JSON report on stdout: every object with its file, kind, name,
// schema errors and the parsed object itself (so the Python side needs no
// YAML parser). Exits 0 whether or not objects are invalid; the caller
// asserts. An object whose kind has no schema here is an error, never a pass.
import { readFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";

const ISTIO_GROUPS = new Set(["extensions.istio.io", "networking.istio.io", "security.istio.io", "telemetry.istio.io"]);
// Cluster-scoped kinds; everything else must name its namespace, so that a
// bare `kubectl apply -f` cannot drop it into `default`.
const CLUSTER_SCOPED = new Set(["Namespace"]);

async function modelFor(apiVersion, kind) {
  const group = apiVersion.includes("/") ? apiVersion.split("/")[0] : "";
  const modulePath = ISTIO_GROUPS.has(group)
    ? `@kubernetes-models/istio/${apiVersion}/${kind}`
    : `kubernetes-models/${apiVersion}/${kind}`;
  try {
    const module = await import(modulePath);
    return module[kind] ?? null;
  } catch {
    return null;
  }
}

function errorsOf(err) {
  // kubernetes-models throws a ValidationError carrying ajv's error list.
  if (Array.isArray(err?.errors) && err.errors.length) {
    return err.errors.map((e) => `${e.instancePath || "/"} ${e.message}${e.params?.allowedValues ? ` (${e.params.allowedValues.join(", ")})` : ""}`);
  }
  return [String(err?.message ?? err)];
}

const objects = [];
for (const file of process.argv.slice(2)) {
  const docs = parseAllDocuments(readFileSync(file, "utf8"));
  let index = 0;
  for (const doc of docs) {
    const entry = { file, index: index++, errors: [] };
    if (doc.errors.length) {
      entry.errors.push(...doc.errors.map((e) => `YAML: ${e.message}`));
      objects.push(entry);
      continue;
    }
    const object = doc.toJS();
    if (object === null || object === undefined) continue; // empty document
    Object.assign(entry, { apiVersion: object.apiVersion, kind: object.kind, name: object.metadata?.name, object });
    if (!object.apiVersion || !object.kind) {
      entry.errors.push("missing apiVersion or kind");
    } else if (!object.metadata?.name) {
      entry.errors.push("missing metadata.name");
    } else {
      if (!CLUSTER_SCOPED.has(object.kind) && !object.metadata.namespace) {
        entry.errors.push("missing metadata.namespace");
      }
      const Model = await modelFor(object.apiVersion, object.kind);
      if (!Model) {
        entry.errors.push(`no schema for ${object.apiVersion} ${object.kind}`);
      } else {
        try {
          new Model(object).validate();
        } catch (err) {
          entry.errors.push(...errorsOf(err));
        }
      }
    }
    objects.push(entry);
  }
}
process.stdout.write(JSON.stringify({ objects }, null, 1) + "\n");
