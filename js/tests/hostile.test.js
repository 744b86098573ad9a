/**
 * Artifacts from a server the app does not fully control (issue 27): metadata sizes far beyond the graph's and
 * JSON nested very deep or far too large are refused with a typed error, quickly and without allocating what
 * they declare; under Node, no file is read from outside an artifact's resolved directory (links do not apply in
 * a browser).
 */

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { cp, mkdtemp, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";

import { ArtifactError, Recommender } from "../src/node.js";
import { jsonDepth } from "../src/json.js";
import { readMetadataProps } from "../src/protobuf.js";
import { sha256Hex } from "../src/sha256.js";
import { KNOWN_ARTIFACT, KNOWN_LARGE, KNOWN_MODEL, withMetadata, withProp } from "./helpers.js";

/** @type {Uint8Array} */
let model;
/** @type {Record<string, string>} */
let props;
/** @type {string} */
let scratch;

before(async () => {
  model = new Uint8Array(await readFile(KNOWN_MODEL));
  props = readMetadataProps(model, "model.onnx");
  scratch = await mkdtemp(join(tmpdir(), "s4rec-js-hostile-"));
});
after(() => rm(scratch, { recursive: true, force: true }));

/**
 * @param {Promise<unknown>} promise
 * @param {RegExp} message
 */
async function refused(promise, message) {
  await assert.rejects(promise, (/** @type {any} */ error) => {
    assert.equal(error.constructor, ArtifactError, `${error.constructor.name}: ${error.message}`);
    assert.match(error.message, message);
    assert.ok(!error.message.includes("\n"), error.message);
    return true;
  });
}

const DEEP = "[".repeat(100_000) + "]".repeat(100_000);

describe("sizes declared in the metadata", () => {
  test("a max_len far beyond the graph's is refused without allocating it", async () => {
    for (const maxLen of [1000, 10 ** 6, 10 ** 9]) {
      const started = performance.now();
      const edited = withMetadata(model, (v) => (v.max_len = maxLen), props);
      await refused(Recommender.load(edited), new RegExp(`max_len ${maxLen}`));
      assert.ok(performance.now() - started < 5000, `${maxLen}: ${performance.now() - started} ms`);
    }
  });

  test("peak memory: a max_len of 10^8 costs what the honest artifact costs", () => {
    // Before: the probe allocated (4, max_len) int64 histories, 3.2 GB at 10^8.
    const script = (/** @type {string} */ source) =>
      `import { readFileSync } from "node:fs";
       import { Recommender } from ${JSON.stringify(new URL("../src/node.js", import.meta.url).href)};
       const bytes = new Uint8Array(readFileSync(${JSON.stringify(source)}));
       let outcome = "loaded";
       try { await Recommender.load(bytes); } catch (e) { outcome = e.constructor.name; }
       // VmHWM: this process's own peak (maxRSS in a child includes its parent's, carried over the spawn)
       let kb = process.resourceUsage().maxRSS;
       try { kb = Number(/VmHWM:\s+(\d+)/.exec(readFileSync("/proc/self/status", "utf8"))[1]); } catch {}
       console.log(outcome, Math.round(kb / 1024));`;
    const run = (/** @type {string} */ source) =>
      execFileSync(process.execPath, ["--input-type=module", "-e", script(source)], { encoding: "utf8" }).trim().split(" ");
    const edited = join(scratch, "max-len.onnx");
    return writeFile(edited, withMetadata(model, (v) => (v.max_len = 10 ** 8), props)).then(() => {
      const [honest, honestMb] = run(KNOWN_MODEL);
      const [outcome, mb] = run(edited);
      assert.equal(honest, "loaded");
      assert.equal(outcome, "ArtifactError");
      assert.ok(Number(mb) < Number(honestMb) + 30, `${mb} MB against ${honestMb} MB for the honest artifact`);
    });
  });

  test("an embedding_dim below the graph's is refused on the shortest probe", async () => {
    const edited = withMetadata(model, (v) => Object.assign(v, { embedding_dim: 1, max_len: 10 ** 6 }), props);
    await refused(Recommender.load(edited), /user vectors of shape \(4, 8\), not \(4, embedding_dim 1\)/);
  });
});

describe("JSON nested very deep, or far too large", () => {
  test("depth counts brackets outside strings", () => {
    assert.equal(jsonDepth("1"), 0);
    assert.equal(jsonDepth('"[[["'), 0);
    assert.equal(jsonDepth('{"a": [1, {"b": []}]}'), 4);
    assert.equal(jsonDepth('["\\"[", "\\\\", "]]"]'), 1);
    assert.equal(jsonDepth(JSON.stringify({ ids: ["a[", "b{", '"c'] })), 2);
    assert.equal(jsonDepth(DEEP), 100_000);
  });

  test("metadata nested 100,000 deep is an ArtifactError, not a RangeError", async () => {
    const deep = withProp(model, "s4rec.metadata", props["s4rec.metadata"].slice(0, -1) + `,"x":${DEEP}}`);
    await refused(Recommender.load(deep), /unreadable s4rec\.metadata: JSON nested 100,001 deep/);
  });

  test("a deep or oversized manifest, and a deep metadata sidecar", async () => {
    const dir = await mkdtemp(join(scratch, "artifact-"));
    await cp(KNOWN_ARTIFACT, dir, { recursive: true });
    const manifest = await readFile(join(dir, "s4rec.json"), "utf8");
    await writeFile(join(dir, "s4rec.json"), manifest.trimEnd().slice(0, -1) + `,"x":${DEEP}}`);
    await refused(Recommender.load(dir), /s4rec\.json: unreadable manifest: JSON nested 100,001 deep/);
    await writeFile(join(dir, "s4rec.json"), manifest + " ".repeat(2 << 20));
    await refused(Recommender.load(dir), /s4rec\.json: unreadable manifest: larger than 1,048,576 bytes/);
    await writeFile(join(dir, "s4rec.json"), manifest);
    await writeFile(join(dir, "model.onnx.json"), `{"note":${DEEP}}`);
    await refused(Recommender.load(dir), /model\.onnx\.json: unreadable metadata sidecar: JSON nested 100,001 deep/);
  });

  test("format 3 item ids in a deeply nested items.json", async () => {
    const dir = await mkdtemp(join(scratch, "large-"));
    await cp(KNOWN_LARGE, dir, { recursive: true });
    const ids = new TextEncoder().encode(`[${DEEP}]`);
    await writeFile(join(dir, "items.json"), ids);
    const large = new Uint8Array(await readFile(join(dir, "model.onnx")));
    const largeProps = readMetadataProps(large, "model.onnx");
    const entry = { file: "items.json", sha256: await sha256Hex(ids), bytes: ids.length, encoding: "json", shape: [12] };
    const edited = withMetadata(large, (v) => (v.sidecars.item_ids = entry), largeProps);
    await writeFile(join(dir, "model.onnx"), edited);
    const manifest = JSON.parse(await readFile(join(dir, "s4rec.json"), "utf8"));
    Object.assign(manifest.variants.fp32, { sha256: await sha256Hex(edited), bytes: edited.length });
    await writeFile(join(dir, "s4rec.json"), JSON.stringify(manifest));
    await refused(Recommender.load(dir), /items\.json: unreadable item ids: JSON nested 100,001 deep/);
  });
});

describe("links (Node)", () => {
  test("a sidecar that links outside the artifact directory is refused; a linked directory loads", async () => {
    const copy = join(scratch, "links", "artifact");
    await cp(KNOWN_LARGE, copy, { recursive: true });
    const linked = join(scratch, "links", "linked");
    await symlink(copy, linked);
    const honest = await Recommender.load(linked);
    assert.ok((await honest.recommend([1, 2], { k: 3 })).length > 0);
    const outside = join(scratch, "links", "popular.npy");
    await cp(join(copy, "popular.npy"), outside); // the same bytes: only the location is wrong
    await rm(join(copy, "popular.npy"));
    await symlink(outside, join(copy, "popular.npy"));
    await refused(Recommender.load(copy), /outside the artifact directory/);
  });
});
