/**
 * Format 3 (large catalogues, docs/ARTIFACT.md): the committed format 3 export of the known-value model read
 * with its sidecar files: the lists and the format 2 export's results, the three item-id encodings, what ONNX
 * Runtime is given (external data, pre-packing), the checks of each sidecar file (missing, truncated,
 * changed, of another dtype or shape, duplicated ids), `.npy` parsing, ANN refused, and loading over http.
 */

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { cp, mkdtemp, readFile, realpath, rm, symlink, writeFile } from "node:fs/promises";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";

import * as ortNode from "onnxruntime-node";

import { ArtifactError, ArtifactVersionError, ChecksumError, Recommender } from "../src/node.js";
import { readExternalDataLocations, readMetadataProps } from "../src/protobuf.js";
import { parseNpy } from "../src/sidecars.js";
import { assertClose, concat, int64Npy, KNOWN_ARTIFACT, KNOWN_LARGE, npyBytes, withMetadata } from "./helpers.js";

/** @type {Uint8Array} */
let model;
/** @type {Record<string, string>} */
let props;
/** @type {string} */
let scratch;
/** @type {Recommender} */
let small;

before(async () => {
  model = new Uint8Array(await readFile(`${KNOWN_LARGE}/model.onnx`));
  props = readMetadataProps(model, "model.onnx");
  scratch = await mkdtemp(join(tmpdir(), "s4rec-js-large-"));
  small = await Recommender.load(KNOWN_ARTIFACT);
});
after(() => rm(scratch, { recursive: true, force: true }));

/** A fresh copy of the committed format 3 artifact. */
async function artifactCopy() {
  const dir = await mkdtemp(join(scratch, "artifact-"));
  await cp(KNOWN_LARGE, dir, { recursive: true });
  return dir;
}

/** @param {Uint8Array} bytes */
const sha256 = (bytes) => createHash("sha256").update(bytes).digest("hex");

/**
 * A copy of the artifact with a model file `edited.onnx` whose metadata `edit` changed (the manifest does not
 * list it, so its own checksum is not checked; its sidecar files are), plus `files` written next to it.
 *
 * @param {(values: Record<string, any>) => void} edit
 * @param {Record<string, Uint8Array | string>} [files]
 * @returns {Promise<string>} the edited model's path
 */
async function edited(edit, files = {}) {
  const dir = await artifactCopy();
  for (const [file, bytes] of Object.entries(files)) await writeFile(join(dir, file), bytes);
  await writeFile(join(dir, "edited.onnx"), withMetadata(model, edit, props));
  return join(dir, "edited.onnx");
}

/**
 * A sidecar entry for `bytes`, as the exporter writes one.
 *
 * @param {string} file
 * @param {Uint8Array} bytes
 * @param {Record<string, unknown>} fields
 */
function entry(file, bytes, fields) {
  return { file, sha256: sha256(bytes), bytes: bytes.length, ...fields };
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

/**
 * recommend, embed and intents of `rec` equal the format 2 export's.
 *
 * @param {Recommender} rec
 * @param {(id: number) => number | string} [idOf] the id `rec` gives item index i that `small` calls i
 */
async function assertSameAsSmall(rec, idOf = (i) => i) {
  for (const history of [[1], [2, 3, 4], [12, 1, 2, 3, 4, 5, 6], [7, 7, 7], [], [99]]) {
    const want = await small.recommend(history, { k: 6 });
    const got = await rec.recommend(history.map(idOf), { k: 6 });
    assert.deepEqual(got.itemIds(), want.itemIds().map((i) => idOf(/** @type {number} */ (i))), JSON.stringify(history));
    assertClose(got.map((r) => r.score), want.map((r) => r.score), 1e-5, JSON.stringify(history));
    assert.equal(got.fallback, want.fallback);
    assertClose(await rec.embed(history.map(idOf)), await small.embed(history), 1e-5, `embed ${history}`);
    assert.deepEqual(await rec.intents(history.map(idOf)), await small.intents(history));
  }
}

describe("a format 3 artifact", () => {
  test("has the format 2 export's lists and results", async () => {
    const rec = await Recommender.load(KNOWN_LARGE);
    const m = rec.metadata;
    assert.equal(m.formatVersion, 3);
    assert.equal(m.tablePrecision, "float32");
    assert.equal(m.itemIdsSha256, "");
    assert.deepEqual(Object.keys(m.sidecars).sort(), ["encoder", "intent_top_items", "item_ids", "item_intents", "item_table", "popular_items"]);
    for (const key of /** @type {const} */ (["itemIds", "popularItems", "intentTopItems", "numItems", "topK", "maxLen", "numIntents"])) {
      assert.deepEqual(m[key], small.metadata[key], key);
    }
    assert.deepEqual(rec.itemsForIntent(2, 5), small.itemsForIntent(2, 5));
    assert.equal(rec.maxUsersPerCall, Math.floor(2 ** 26 / 13));
    await assertSameAsSmall(rec);
  });

  test("int8: the per-row int8 table (MatMulNBits) scores close to fp32, the encoder is the same", async () => {
    const rec = await Recommender.load(KNOWN_LARGE, { variant: "int8" });
    assert.equal(rec.metadata.tablePrecision, "int8");
    assert.equal(rec.source, `${KNOWN_LARGE}/model.int8.onnx`);
    for (const history of [[1], [2, 3, 4], [12, 1, 2, 3, 4, 5, 6]]) {
      const want = new Map((await small.recommend(history, { k: 8 })).map((r) => [r.item, r.score]));
      for (const { item, score } of await rec.recommend(history, { k: 3 })) {
        assert.ok(Math.abs(score - /** @type {number} */ (want.get(item))) < 0.05, `${history}: ${item} ${score}`);
      }
      assertClose(await rec.embed(history), await small.embed(history), 1e-5, "embed");
    }
  });

  test("ONNX Runtime gets the graphs' external data files and, where the manifest says so, no pre-packing", async () => {
    const dir = await artifactCopy();
    const manifest = JSON.parse(await readFile(join(dir, "s4rec.json"), "utf8"));
    manifest.variants.fp32.prepacking = false;
    await writeFile(join(dir, "s4rec.json"), JSON.stringify(manifest));
    /** @type {any[]} */
    const created = [];
    const ort = {
      Tensor: ortNode.Tensor,
      InferenceSession: {
        /** @param {Uint8Array} bytes @param {any} options */
        create: (bytes, options) => (created.push({ ...options, format: readMetadataProps(bytes, "")["s4rec.format"] }), ortNode.InferenceSession.create(bytes, options)),
      },
    };
    for (const [variant, files, prepacking] of /** @type {const} */ ([
      ["fp32", ["item_table.npy"], false],
      ["int8", ["item_table.npy", "item_table.int8.npy", "item_table.scales.npy"], true],
    ])) {
      created.length = 0;
      const rec = await Recommender.load(dir, { variant, ort: /** @type {any} */ (ort), sessionOptions: { extra: { note: "kept" } } });
      assert.equal(created.length, 2); // the encoder and the model
      const encoder = created.find((o) => o.format === "s4rec-onnx-encoder");
      const graph = created.find((o) => o.format === "s4rec-onnx");
      assert.deepEqual(encoder.externalData.map((/** @type {any} */ d) => d.path), ["item_table.npy"]);
      assert.deepEqual(graph.externalData.map((/** @type {any} */ d) => d.path), files);
      for (const { path, data } of graph.externalData) assert.deepEqual(data, new Uint8Array(await readFile(join(dir, path))));
      assert.equal(graph.extra.session?.disable_prepacking, prepacking ? undefined : "1", variant);
      assert.equal(graph.extra.note, "kept");
      assert.equal(encoder.extra.session, undefined);
      assert.equal((await rec.recommend([1, 2], { k: 3 })).length, 3);
    }
  });

  test("Node: onnxruntime-node reads the item tables from the directory, each checked where it lies first", async () => {
    const dir = await artifactCopy();
    /** @type {any[]} */
    const created = [];
    const ort = {
      env: ortNode.env, // env.versions.node: onnxruntime-node
      Tensor: ortNode.Tensor,
      InferenceSession: {
        /** @param {Uint8Array} bytes @param {any} options */
        create: (bytes, options) => (created.push(options), ortNode.InferenceSession.create(bytes, options)),
      },
    };
    const rec = await Recommender.load(dir, { variant: "int8", ort: /** @type {any} */ (ort) });
    assert.equal(created.length, 2);
    for (const options of created) {
      assert.equal(options.externalData, undefined); // no bytes handed over: no copy of the table per session
      assert.equal(options.extra.session.model_external_initializers_file_folder_path, await realpath(dir));
    }
    const bytesLoaded = await Recommender.load(dir, { variant: "int8", ort: { Tensor: ortNode.Tensor, InferenceSession: ortNode.InferenceSession } });
    for (const history of [[1], [2, 3, 4], [12, 1, 2, 3, 4, 5, 6]]) {
      assert.deepEqual(await rec.recommend(history, { k: 6 }), await bytesLoaded.recommend(history, { k: 6 }));
      assert.deepEqual(await rec.score(history, [1, 5, 9]), await bytesLoaded.score(history, [1, 5, 9]));
      assert.deepEqual(await rec.similarItems(history[0], { k: 3 }), await bytesLoaded.similarItems(history[0], { k: 3 }));
    }
    // a table changed in place (same size): its SHA-256, streamed from the file, no longer matches
    const table = await readFile(join(dir, "item_table.npy"));
    table[table.length - 1] ^= 1;
    await writeFile(join(dir, "item_table.npy"), table);
    await rejectsWith(Recommender.load(dir), ChecksumError, /item_table\.npy: SHA-256 [0-9a-f]{12}\.\.\. does not match/);
    // a table that is a link out of the directory is not read, by the SDK nor by ONNX Runtime
    const outside = join(scratch, `outside-${created.length}-${Date.now()}.npy`);
    await writeFile(outside, await readFile(join(KNOWN_LARGE, "item_table.npy")));
    await rm(join(dir, "item_table.npy"));
    await symlink(outside, join(dir, "item_table.npy"));
    await rejectsWith(Recommender.load(dir), ArtifactError, /item_table\.npy: resolves to .*, outside the artifact directory/);
  });

  test("a runtime that ignores the externalData option: an ArtifactVersionError saying to upgrade it", async () => {
    const ort = {
      Tensor: ortNode.Tensor,
      InferenceSession: {
        /** @param {Uint8Array} bytes @param {any} options */
        create: (bytes, { externalData, ...options }) => ortNode.InferenceSession.create(bytes, options),
      },
    };
    await rejectsWith(Recommender.load(KNOWN_LARGE, { ort: /** @type {any} */ (ort) }), ArtifactVersionError, /did not take the model's external data .*Upgrade it/);
  });

  test("the graphs name their external data (the item tables) in their initializers", () => {
    assert.deepEqual(readExternalDataLocations(model, "model.onnx"), ["item_table.npy"]);
    assert.deepEqual(readExternalDataLocations(new Uint8Array(0), "empty"), []);
  });

  test("string ids (utf-8: a blob and offsets) and mixed ids (json)", async () => {
    const strings = small.metadata.itemIds.map((i) => (i === 5 ? "😀 five" : i === 6 ? "" : `id-${i}-é`));
    const encoded = strings.map((s) => new TextEncoder().encode(s));
    const blob = concat(...encoded);
    const offsets = int64Npy(encoded.reduce((o, e) => [...o, o[o.length - 1] + e.length], [0]));
    const utf8 = await edited(
      (v) => {
        v.sidecars.item_ids = entry("items.utf8", blob, { encoding: "utf-8", shape: [12] });
        v.sidecars.item_id_offsets = entry("items.offsets.npy", offsets, { dtype: "int64", shape: [13] });
      },
      { "items.utf8": blob, "items.offsets.npy": offsets },
    );
    const rec = await Recommender.load(utf8);
    assert.deepEqual(rec.metadata.itemIds, strings);
    await assertSameAsSmall(rec, (i) => strings[i - 1] ?? `unknown-${i}`);

    const mixed = small.metadata.itemIds.map((i) => (/** @type {number} */ (i) % 2 ? /** @type {number} */ (i) * 10 : `s${i}`));
    const json = new TextEncoder().encode(JSON.stringify(mixed));
    const jsonModel = await edited((v) => (v.sidecars.item_ids = entry("items.json", json, { encoding: "json", shape: [12] })), { "items.json": json });
    const mixedRec = await Recommender.load(jsonModel);
    assert.deepEqual(mixedRec.metadata.itemIds, mixed);
    await assertSameAsSmall(mixedRec, (i) => mixed[i - 1] ?? -i);
  });
});

describe("format 3 refusals: each sidecar is checked", () => {
  test("a missing sidecar file, naming it and what to do", async () => {
    for (const [file, name] of [["items.npy", "item_ids"], ["popular.npy", "popular_items"], ["encoder.onnx", "encoder"], ["item_table.npy", "item_table"]]) {
      const dir = await artifactCopy();
      await rm(join(dir, file));
      const message = new RegExp(`${file.replace(".", "\\.")}: sidecar file "${name}" of model\\.onnx is missing\\. Copy the whole artifact directory`);
      await rejectsWith(Recommender.load(dir), ArtifactError, message);
    }
    const dir = await artifactCopy();
    await rm(join(dir, "item_table.int8.npy"));
    assert.equal((await Recommender.load(dir)).metadata.numItems, 12); // fp32 does not read it
    await rejectsWith(Recommender.load(dir, { variant: "int8" }), ArtifactError, /item_table\.int8\.npy: sidecar file "item_table_int8" of model\.int8\.onnx is missing/);
  });

  test("a truncated or changed sidecar file", async () => {
    const dir = await artifactCopy();
    const popular = await readFile(join(dir, "popular.npy"));
    await writeFile(join(dir, "popular.npy"), popular.subarray(0, popular.length - 8));
    await rejectsWith(Recommender.load(dir), ArtifactError, /popular\.npy: 216 bytes, the metadata of model\.onnx records 224\. The file is truncated or was replaced/);
    popular[popular.length - 1] ^= 1;
    await writeFile(join(dir, "popular.npy"), popular);
    await rejectsWith(Recommender.load(dir), ChecksumError, /popular\.npy: SHA-256 [0-9a-f]{12}\.\.\. does not match the [0-9a-f]{12}\.\.\. recorded in model\.onnx\. .*restore it or re-export/);
  });

  test("a .npy of another dtype or shape than recorded, or not a .npy", async () => {
    const shape = await edited((v) => (v.sidecars.popular_items.shape = [7]));
    await rejectsWith(Recommender.load(shape), ArtifactError, /popular\.npy: int64\[12\], the metadata records int64\[7\]\. Re-export/);
    const notNpy = new TextEncoder().encode("not a numpy file");
    const bad = await edited((v) => (v.sidecars.popular_items = entry("bad.npy", notNpy, { dtype: "int64", shape: [16] })), { "bad.npy": notNpy });
    await rejectsWith(Recommender.load(bad), ArtifactError, /bad\.npy: not a readable \.npy file \(expected the magic/);
    const floats = npyBytes("<f4", [12], new Uint8Array(48));
    const table = await edited((v) => (v.sidecars.popular_items = entry("f.npy", floats, { dtype: "float32", shape: [12] })), { "f.npy": floats });
    await rejectsWith(Recommender.load(table), ArtifactError, /f\.npy: popular_items must be int64 of rank 1, got float32\[12\]/);
  });

  test("item ids: duplicated, too few, beyond 2^53, not UTF-8, bad offsets, an unknown encoding", async () => {
    /** @param {Uint8Array} npy @param {number} [count] */
    const withIds = (npy, count = 12) =>
      edited((v) => (v.sidecars.item_ids = entry("ids.npy", npy, { encoding: "npy", dtype: "int64", shape: [count] })), { "ids.npy": npy });
    const ids = Array.from({ length: 12 }, (_, i) => i + 1);
    await rejectsWith(Recommender.load(await withIds(int64Npy([1, ...ids.slice(1, 11), 1]))), ArtifactError, /invalid s4rec metadata: item_ids has duplicates/);
    await rejectsWith(Recommender.load(await withIds(int64Npy(ids.slice(0, 11)), 11)), ArtifactError, /ids\.npy: 11 item ids for num_items 12/);
    await rejectsWith(Recommender.load(await withIds(int64Npy([2n ** 60n, ...ids.slice(1)]))), ArtifactError, /ids\.npy: a value is beyond 2\^53, .*as strings/);

    const blob = Uint8Array.from([...new TextEncoder().encode("abcdefghijk"), 0xff]);
    const offsets = int64Npy([...ids.map((i) => i - 1), 12]);
    /** @param {Uint8Array} b @param {Uint8Array} o */
    const withUtf8 = (b, o) =>
      edited(
        (v) => {
          v.sidecars.item_ids = entry("ids.utf8", b, { encoding: "utf-8", shape: [12] });
          v.sidecars.item_id_offsets = entry("ids.offsets.npy", o, { dtype: "int64", shape: [13] });
        },
        { "ids.utf8": b, "ids.offsets.npy": o },
      );
    await rejectsWith(Recommender.load(await withUtf8(blob, offsets)), ArtifactError, /ids\.utf8: not UTF-8/);
    await rejectsWith(Recommender.load(await withUtf8(blob.subarray(0, 11), offsets)), ArtifactError, /ids\.offsets\.npy: offsets do not fit the id blob/);
    const decreasing = int64Npy([0, 2, 1, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    await rejectsWith(Recommender.load(await withUtf8(blob, decreasing)), ArtifactError, /ids\.offsets\.npy: offsets must not decrease/);

    const json = new TextEncoder().encode("[1, 2.5]");
    const floats = await edited((v) => (v.sidecars.item_ids = entry("ids.json", json, { encoding: "json", shape: [2] })), { "ids.json": json });
    await rejectsWith(Recommender.load(floats), ArtifactError, /ids\.json: item ids must be a list of ints and strings/);
    const encoding = await edited((v) => (v.sidecars.item_ids.encoding = "parquet"));
    await rejectsWith(Recommender.load(encoding), ArtifactError, /item_ids sidecar encoding "parquet" is not one this SDK reads \(npy, utf-8, json\)/);
  });

  test("metadata without the sidecars it needs, or with file names outside the directory", async () => {
    const noTable = await edited((v) => delete v.sidecars.item_table);
    await rejectsWith(Recommender.load(noTable), ArtifactError, /invalid s4rec metadata: no "item_table" in sidecars/);
    const noSidecars = await edited((v) => delete v.sidecars);
    await rejectsWith(Recommender.load(noSidecars), ArtifactError, /missing metadata keys \["sidecars"\]/);
    const outside = await edited((v) => (v.sidecars.popular_items.file = "../popular.npy"));
    await rejectsWith(Recommender.load(outside), ArtifactError, /sidecar "popular_items" has an invalid file name "\.\.\/popular\.npy"/);
    const renamed = await edited((v) => (v.sidecars.item_table.file = "table.npy"), { "table.npy": await readFile(`${KNOWN_LARGE}/item_table.npy`) });
    await rejectsWith(Recommender.load(renamed), ArtifactError, /the graph reads external data from "item_table\.npy", which the metadata's sidecars table does not list/);
  });

  test("bytes of a format 3 model, its encoder graph alone, ANN retrieval, an unknown verify mode", async () => {
    await rejectsWith(Recommender.load(model), ArtifactError, /<bytes>: a format 3 model .* loaded from bytes\. Load the artifact directory/);
    await rejectsWith(Recommender.load(`${KNOWN_LARGE}/encoder.onnx`), ArtifactError, /encoder\.onnx: this is the encoder-only graph of a format 3 artifact/);
    await rejectsWith(Recommender.load(KNOWN_LARGE, { retrieval: /** @type {any} */ ("ann") }), RangeError, /retrieval "ann" .* is available in the Python SDK only .*scores every item exactly/);
    await rejectsWith(Recommender.load(KNOWN_LARGE, { retrieval: /** @type {any} */ ("fast") }), RangeError, /retrieval must be "exact"/);
    await rejectsWith(Recommender.load(KNOWN_LARGE, { verify: /** @type {any} */ ("all") }), RangeError, /verify must be one of \["fast","full"\]/);
  });
});

test(".npy parsing: header, dtypes, shapes, data length", () => {
  const parsed = parseNpy(int64Npy([1, 2, 3, 4, 5, 6], [2, 3]), "x.npy");
  assert.deepEqual([parsed.dtype, parsed.shape, parsed.data.length], ["int64", [2, 3], 48]);
  assert.deepEqual(parseNpy(npyBytes("|u1", [2, 1, 4], new Uint8Array(8)), "u.npy").shape, [2, 1, 4]);
  assert.deepEqual(parseNpy(npyBytes("<f4", [], new Uint8Array(4)), "s.npy").shape, []);
  const cases = /** @type {[Uint8Array, RegExp][]} */ ([
    [new Uint8Array(4), /expected the magic/],
    [npyBytes("<i8", [3], new Uint8Array(16)), /16 data bytes for int64\[3\], expected 24/],
    [npyBytes(/** @type {any} */ (">i8"), [1], new Uint8Array(8)), /dtype >i8, expected one of <i8, <f4, <i4, \|u1/],
    [Uint8Array.from("\x93NUMPY\x01\x00\xff\x00{", (c) => c.charCodeAt(0)), /a header of 255 bytes in a file of 11/],
  ]);
  for (const [bytes, message] of cases) {
    assert.throws(() => parseNpy(bytes, "bad.npy"), (/** @type {any} */ e) => e instanceof ArtifactError && message.test(e.message));
  }
  const fortran = Buffer.from(Buffer.from(int64Npy([1])).toString("latin1").replace("False", "True "), "latin1");
  assert.throws(() => parseNpy(new Uint8Array(fortran), "f.npy"), /Fortran order/);
});

describe("a format 3 artifact over http (a server on 127.0.0.1)", () => {
  /** @type {import("node:http").Server} */
  let server;
  /** @type {string} */
  let base;
  /** @type {string[]} */
  const requests = [];

  before(async () => {
    server = createServer(async (request, response) => {
      requests.push(/** @type {string} */ (request.url));
      try {
        response.end(await readFile(join(KNOWN_LARGE, /** @type {string} */ (request.url).replace(/^\/artifact\//, ""))));
      } catch {
        response.writeHead(404).end();
      }
    });
    await new Promise((done) => server.listen(0, "127.0.0.1", () => done(null)));
    base = `http://127.0.0.1:${/** @type {import("node:net").AddressInfo} */ (server.address()).port}`;
  });
  after(() => new Promise((done) => server.close(done)));

  test("the sidecar files are fetched relative to the artifact, each once", async () => {
    requests.length = 0;
    const rec = await Recommender.load(`${base}/artifact/`, { variant: "int8", sidecar: false });
    const files = ["s4rec.json", "model.int8.onnx", "items.npy", "popular.npy", "intent_top_items.npy", "item_intents.npy", "encoder.onnx", "item_table.npy", "item_table.int8.npy", "item_table.scales.npy"];
    assert.deepEqual(requests.sort(), files.map((f) => `/artifact/${f}`).sort());
    const local = await Recommender.load(KNOWN_LARGE, { variant: "int8" });
    assert.deepEqual(await rec.recommend([1, 2], { k: 5 }), await local.recommend([1, 2], { k: 5 }));
    assert.deepEqual(await rec.embed([3]), await local.embed([3]));
  });

  test("a sidecar missing on the server", async () => {
    await rejectsWith(Recommender.load(`${base}/artifact/`, { fetch: (url) => (String(url).endsWith("popular.npy") ? Promise.resolve(new Response(null, { status: 404 })) : fetch(url)) }), ArtifactError, /\/artifact\/popular\.npy: sidecar file "popular_items" of model\.onnx is missing/);
  });
});
