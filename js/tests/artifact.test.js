/**
 * Loading: what the SDK refuses (each with its error class and message) and what it accepts: directories,
 * single files, bytes, URLs served from 127.0.0.1, and the optional metadata sidecar.
 */

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { cp, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";

import * as core from "../src/index.js";
import {
  ArtifactError,
  ArtifactVersionError,
  ChecksumError,
  Recommender,
  S4RecError,
} from "../src/node.js";
import { readMetadataProps } from "../src/protobuf.js";
import { identityModel, KNOWN_ARTIFACT, KNOWN_MODEL, withMetadata, withProp } from "./helpers.js";

/** @type {Uint8Array} */
let model;
/** @type {Record<string, string>} */
let props;
/** @type {string} */
let scratch;

before(async () => {
  model = new Uint8Array(await readFile(KNOWN_MODEL));
  props = readMetadataProps(model, "model.onnx");
  scratch = await mkdtemp(join(tmpdir(), "s4rec-js-"));
});
after(() => rm(scratch, { recursive: true, force: true }));

/** A fresh copy of the committed artifact directory. */
async function artifactCopy() {
  const dir = await mkdtemp(join(scratch, "artifact-"));
  await cp(KNOWN_ARTIFACT, dir, { recursive: true });
  return dir;
}

/**
 * @param {Promise<unknown>} promise
 * @param {Function} type
 * @param {RegExp} message
 */
async function rejectsWith(promise, type, message) {
  await assert.rejects(promise, (/** @type {any} */ error) => {
    assert.equal(error.constructor, type, `${error.constructor.name}: ${error.message}`);
    assert.match(error.message, message);
    return true;
  });
}

test("the errors form one hierarchy, as in Python", () => {
  const checksum = new ChecksumError("x");
  assert.ok(checksum instanceof ArtifactError && checksum instanceof S4RecError && checksum instanceof Error);
  assert.ok(new ArtifactVersionError("x") instanceof ArtifactError);
  assert.equal(checksum.name, "ChecksumError");
});

describe("refused artifacts", () => {
  test("a path that does not exist", async () => {
    await rejectsWith(Recommender.load(join(scratch, "nothing")), ArtifactError, /no such artifact\. Create one with `s4rec-export model\.pt -o/);
  });

  test("a directory without s4rec.json", async () => {
    await rejectsWith(Recommender.load(scratch), ArtifactError, /no s4rec\.json in this directory, so it is not an s4rec artifact/);
  });

  test("a manifest of another format version", async () => {
    const dir = await artifactCopy();
    const manifest = JSON.parse(await readFile(join(dir, "s4rec.json"), "utf8"));
    await writeFile(join(dir, "s4rec.json"), JSON.stringify({ ...manifest, format_version: 2 }));
    await rejectsWith(Recommender.load(dir), ArtifactVersionError, /manifest format version 2, this SDK reads 1/);
  });

  test("a manifest of something else", async () => {
    const dir = await artifactCopy();
    await writeFile(join(dir, "s4rec.json"), JSON.stringify({ format: "other" }));
    await rejectsWith(Recommender.load(dir), ArtifactError, /not an s4rec manifest/);
    await writeFile(join(dir, "s4rec.json"), "{not json");
    await rejectsWith(Recommender.load(dir), ArtifactError, /unreadable manifest/);
  });

  test("a variant the artifact does not have", async () => {
    await rejectsWith(Recommender.load(KNOWN_ARTIFACT, { variant: "int8" }), ArtifactError, /no "int8" variant in this artifact \(it has \["fp32"\]\)\. .*--quantize int8/);
  });

  test("an ORT-format file (the mobile variant) without its directory's fp32 model, or damaged", async () => {
    // Loaded for real from an export with --mobile by tests/test_js.py's parity tests.
    const dir = await artifactCopy();
    await writeFile(join(dir, "model.ort"), "x");
    await rejectsWith(Recommender.load(join(dir, "model.ort")), ArtifactError, /ORT-format file .* on its own: its metadata are read from the fp32 model\.onnx/);
    const manifest = JSON.parse(await readFile(join(dir, "s4rec.json"), "utf8"));
    manifest.variants.mobile = { file: "model.ort", sha256: createHash("sha256").update("x").digest("hex"), bytes: 1 };
    await writeFile(join(dir, "s4rec.json"), JSON.stringify(manifest));
    await rejectsWith(Recommender.load(dir, { variant: "mobile" }), ArtifactError, /model\.ort: ONNX Runtime cannot load the model/);
    await writeFile(join(dir, "model.onnx"), withProp(model, "note", "changed"));
    await rejectsWith(Recommender.load(dir, { variant: "mobile" }), ChecksumError, /model\.onnx: SHA-256 .* does not match the manifest's/);
  });

  test("format 2's encoder graph: checked against the manifest and the full graph; not for a lone file", async () => {
    const dir = await artifactCopy();
    assert.notEqual((await Recommender.load(dir)).encoder, null);
    assert.equal((await Recommender.load(await readFile(join(dir, "model.onnx")))).encoder, null);
    const encoder = await readFile(join(dir, "encoder.onnx"));
    await writeFile(join(dir, "encoder.onnx"), Buffer.concat([encoder, Buffer.from([0])]));
    await rejectsWith(Recommender.load(dir), ArtifactError, /encoder\.onnx: 12,298 bytes, the metadata of model\.onnx records 12297/);
    encoder[encoder.length - 1] ^= 1;
    await writeFile(join(dir, "encoder.onnx"), encoder);
    await rejectsWith(Recommender.load(dir), ChecksumError, /encoder\.onnx: SHA-256 .* does not match/);
  });

  test("a model file changed after export", async () => {
    const dir = await artifactCopy();
    await writeFile(join(dir, "model.onnx"), withProp(model, "note", "changed"));
    await rejectsWith(Recommender.load(dir), ChecksumError, /model\.onnx: SHA-256 [0-9a-f]{12}\.\.\. does not match the manifest's 976984d296e8/);
    // The file alone is checked against the manifest next to it, too.
    await rejectsWith(Recommender.load(join(dir, "model.onnx")), ChecksumError, /does not match the manifest/);
  });

  test("a model file listed in the manifest but missing", async () => {
    const dir = await artifactCopy();
    await rm(join(dir, "model.onnx"));
    await rejectsWith(Recommender.load(dir), ArtifactError, /model\.onnx: listed in s4rec\.json but missing/);
  });

  test("bytes that are not an ONNX model", async () => {
    await rejectsWith(Recommender.load(new TextEncoder().encode("\xff\xff\xff")), ArtifactError, /<bytes>: not an ONNX model/);
    await rejectsWith(Recommender.load(new Uint8Array(0)), ArtifactError, /<bytes>: not an s4rec model \(metadata s4rec\.format is null/);
  });

  test("another format, or another format version", async () => {
    await rejectsWith(Recommender.load(withProp(model, "s4rec.format", "other")), ArtifactError, /not an s4rec model \(metadata s4rec\.format is "other", expected "s4rec-onnx"\)/);
    await rejectsWith(Recommender.load(withProp(model, "s4rec.format_version", "1")), ArtifactVersionError, /model format version 1, written by an older s4rec-export; this SDK reads versions 2 and 3 .*Re-export the artifact from its checkpoint/);
    await rejectsWith(Recommender.load(withProp(model, "s4rec.format_version", "4")), ArtifactVersionError, /model format version "4", this SDK reads versions 2 and 3\. Install the s4rec JavaScript package that matches the exporter/);
    // The property and the JSON's format_version must agree.
    await rejectsWith(Recommender.load(withProp(model, "s4rec.format_version", "3")), ArtifactError, /invalid s4rec metadata: s4rec\.format_version "3" but the metadata's format_version is 2/);
  });

  test("metadata that is not JSON, lacks keys or is inconsistent", async () => {
    await rejectsWith(Recommender.load(withProp(model, "s4rec.metadata", "{")), ArtifactError, /unreadable s4rec\.metadata \(/);
    const without = withMetadata(model, (v) => delete v.top_k, props);
    await rejectsWith(Recommender.load(without), ArtifactError, /missing metadata keys \["top_k"\]\. Re-export the artifact\./);
    const short = withMetadata(model, (v) => (v.num_items = 11), props);
    await rejectsWith(Recommender.load(short), ArtifactError, /12 item_ids for num_items 11/);
    const version = withMetadata(model, (v) => (v.format_version = "2"), props);
    await rejectsWith(Recommender.load(version), ArtifactError, /format_version "2" \(this SDK reads \[2,3\]\)/);
    const popular = withMetadata(model, (v) => v.popular_items.push(13), props);
    await rejectsWith(Recommender.load(popular), ArtifactError, /popular_items outside 1\.\.12/);
    const noIntentOutput = withMetadata(model, (v) => (v.outputs = v.outputs.slice(0, 3)), props);
    await rejectsWith(Recommender.load(noIntentOutput), ArtifactError, /3 intents but no intent_probabilities output/);
  });

  test("an altered item vocabulary", async () => {
    const swapped = withMetadata(model, (v) => v.item_ids.reverse(), props);
    await rejectsWith(Recommender.load(swapped), ChecksumError, /item vocabulary checksum mismatch: recorded [0-9a-f]{12}\.\.\., computed .*re-export/);
    const duplicated = withMetadata(model, (v) => (v.item_ids[1] = v.item_ids[0]), props);
    await rejectsWith(Recommender.load(duplicated), ArtifactError, /item_ids has duplicates/);
    const floats = withMetadata(model, (v) => (v.item_ids[0] = 1.5), props);
    await rejectsWith(Recommender.load(floats), ArtifactError, /item_ids must be ints or strings \(found 1\.5\)/);
  });

  test("integer item ids beyond 2^53", async () => {
    const big = withMetadata(model, (v) => (v.item_ids[0] = 2 ** 60), props);
    await rejectsWith(Recommender.load(big), ArtifactError, /an item id near 1152921504606847000 is beyond 2\^53, .*as strings/);
  });

  test("a graph without the public inputs and outputs", async () => {
    await rejectsWith(Recommender.load(identityModel(props)), ArtifactError, /the graph does not match the s4rec contract: no input "exclude" .*missing outputs \["user_embedding","top_scores","intent_probabilities"\]/);
  });

  test("a model this ONNX Runtime cannot run", async () => {
    await rejectsWith(Recommender.load(identityModel(props, 99)), ArtifactVersionError, /cannot run the model \(Unsupported model IR version: 99.*\)\. Upgrade it/);
  });

  test("wrong load arguments", async () => {
    await assert.rejects(Recommender.load(/** @type {any} */ (5)), /TypeError: source must be an artifact directory or \.onnx file/);
    await assert.rejects(Recommender.load(KNOWN_ARTIFACT, /** @type {any} */ ({ threads: 2 })), /TypeError: Recommender\.load\(\): unknown option\(s\) \["threads"\]/);
    await assert.rejects(Recommender.load(KNOWN_ARTIFACT, { unknown: /** @type {any} */ ("drop") }), RangeError);
    await assert.rejects(Recommender.load(KNOWN_ARTIFACT, { ort: /** @type {any} */ ({}) }), /TypeError: ort must be an ONNX Runtime module/);
  });

  test("the runtime-neutral entry needs the ort module", async () => {
    await rejectsWith(core.Recommender.load(model), S4RecError, /no ONNX Runtime given: pass it as Recommender\.load\(source, \{ ort \}\)/);
    const ort = await import("onnxruntime-node");
    const rec = await core.Recommender.load(model, { ort });
    assert.equal((await rec.recommend([1], { k: 3 })).length, 3);
  });
});

describe("the metadata sidecar (<model file>.json)", () => {
  test("supplies keys the model lacks (here the item vocabulary)", async () => {
    const values = JSON.parse(props["s4rec.metadata"]);
    const dir = await mkdtemp(join(scratch, "sidecar-"));
    await writeFile(join(dir, "model.onnx"), withMetadata(model, (v) => delete v.item_ids, props));
    await writeFile(join(dir, "model.onnx.json"), JSON.stringify({ item_ids: values.item_ids }));
    const rec = await Recommender.load(join(dir, "model.onnx"));
    const reference = await Recommender.load(KNOWN_ARTIFACT);
    assert.deepEqual(rec.metadata.itemIds, reference.metadata.itemIds);
    assert.deepEqual((await rec.recommend([2, 3], { k: 5 })).itemIds(), (await reference.recommend([2, 3], { k: 5 })).itemIds());
    // Not looked for with sidecar: false; given as an object for bytes.
    await rejectsWith(Recommender.load(join(dir, "model.onnx"), { sidecar: false }), ArtifactError, /missing metadata keys \["item_ids"\]/);
    const bytes = new Uint8Array(await readFile(join(dir, "model.onnx")));
    const fromBytes = await Recommender.load(bytes, { sidecar: { item_ids: values.item_ids } });
    assert.deepEqual(fromBytes.metadata.itemIds, reference.metadata.itemIds);
  });

  test("must agree with the model where both have a key", async () => {
    const dir = await artifactCopy();
    await writeFile(join(dir, "model.onnx.json"), JSON.stringify({ num_items: 11 }));
    await rejectsWith(Recommender.load(dir), ArtifactError, /inconsistent metadata: the sidecar's num_items differs from the model's/);
    await writeFile(join(dir, "model.onnx.json"), JSON.stringify({ num_items: 12, note: "same export" }));
    assert.equal((await Recommender.load(dir)).metadata.values.note, "same export");
    await writeFile(join(dir, "model.onnx.json"), "[1]");
    await rejectsWith(Recommender.load(dir), ArtifactError, /model\.onnx\.json: the metadata sidecar is not a JSON object/);
  });
});

describe("artifacts over http (a server on 127.0.0.1)", () => {
  /** @type {import("node:http").Server} */
  let server;
  /** @type {string} */
  let base;
  /** @type {string} */
  let served;
  /** @type {string[]} */
  const requests = [];

  before(async () => {
    served = await artifactCopy();
    server = createServer(async (request, response) => {
      requests.push(/** @type {string} */ (request.url));
      if (request.url?.startsWith("/broken/")) return response.writeHead(500).end();
      try {
        response.end(await readFile(join(served, /** @type {string} */ (request.url).replace(/^\/artifact\//, ""))));
      } catch {
        response.writeHead(404).end();
      }
    });
    await new Promise((done) => server.listen(0, "127.0.0.1", () => done(null)));
    base = `http://127.0.0.1:${/** @type {import("node:net").AddressInfo} */ (server.address()).port}`;
  });
  after(() => new Promise((done) => server.close(done)));

  test("a directory URL: manifest, checked model file, and a probe for the sidecar", async () => {
    requests.length = 0;
    const rec = await Recommender.load(`${base}/artifact`);
    assert.equal(rec.source, `${base}/artifact/model.onnx`);
    const files = ["encoder.onnx", "model.onnx", "model.onnx.json", "s4rec.json"]; // encoder.onnx: format 2's encoder graph
    assert.deepEqual(requests.sort(), files.map((f) => `/artifact/${f}`));
    assert.notEqual(rec.encoder, null);
    const local = await Recommender.load(KNOWN_ARTIFACT);
    assert.deepEqual(await rec.recommend([1, 2], { k: 5 }), await local.recommend([1, 2], { k: 5 }));
  });

  test("a model file URL, and a URL object", async () => {
    assert.equal((await Recommender.load(new URL(`${base}/artifact/model.onnx`))).metadata.numItems, 12);
  });

  test("a tampered file is refused", async () => {
    await writeFile(join(served, "model.onnx"), withProp(model, "note", "changed"));
    await rejectsWith(Recommender.load(`${base}/artifact/`), ChecksumError, /\/artifact\/model\.onnx: SHA-256 .* does not match the manifest's/);
    await cp(KNOWN_MODEL, join(served, "model.onnx"));
  });

  test("a URL without an artifact, and a failing server", async () => {
    await rejectsWith(Recommender.load(`${base}/nothing/`), ArtifactError, /\/nothing\/: no s4rec\.json in this directory/);
    await rejectsWith(Recommender.load(`${base}/broken/`), ArtifactError, /\/broken\/s4rec\.json: the server answered HTTP 500/);
  });
});
