/**
 * Known values on the committed micro model (tests/fixtures/known, made by its make.py with the Python SDK):
 * the JavaScript SDK on onnxruntime-node must give the same recommendations, embeddings and intents, from
 * its format 2 export and from its format 3 one (sidecar files, the item table as external data).
 */

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFile } from "node:fs/promises";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

import { Recommender } from "../src/node.js";
import { assertClose, KNOWN_ARTIFACT, KNOWN_LARGE, KNOWN_MODEL, KNOWN_VALUES } from "./helpers.js";

const LEGACY_ARTIFACT = fileURLToPath(new URL("../../tests/fixtures/legacy/artifact", import.meta.url));
const ATOL = 1e-5; // tests/test_known_values.py's tolerance

/** @param {Recommender} rec */
async function checkAgainstKnown(rec) {
  const { histories } = KNOWN_VALUES;
  for (const [u, want] of KNOWN_VALUES.recommend.entries()) {
    const got = await rec.recommend(histories[u], { k: 5, excludeSeen: false });
    assert.deepEqual(got.itemIds(), want.map(([item]) => item), `recommend ${JSON.stringify(histories[u])}`);
    assertClose(got.map((r) => r.score), want.map(([, score]) => score), ATOL, `scores ${JSON.stringify(histories[u])}`);
    assert.equal(got.fallback, false);
  }
  for (const [u, want] of KNOWN_VALUES.embed.entries()) {
    assertClose(await rec.embed(histories[u]), want, ATOL, `embed ${JSON.stringify(histories[u])}`);
  }
  for (const [u, want] of KNOWN_VALUES.intents.entries()) {
    const got = await rec.intents(histories[u], { top: 3 });
    assert.deepEqual(got.map((i) => i.intent), want.map(([intent]) => intent), `intents ${JSON.stringify(histories[u])}`);
    assertClose(got.map((i) => i.probability), want.map(([, p]) => p), ATOL, "intent probabilities");
  }
  const popular = await rec.recommend([], { k: 3 });
  assert.deepEqual(popular.itemIds(), KNOWN_VALUES.popular);
  assert.equal(popular.fallback, true);
  assert.ok(popular.every((r) => Number.isNaN(r.score)));
}

test("the committed artifact directory gives the known values", async () => {
  const rec = await Recommender.load(KNOWN_ARTIFACT);
  assert.equal(rec.metadata.numItems, 12);
  assert.equal(rec.metadata.maxLen, 5);
  assert.equal(rec.metadata.topK, 8);
  assert.equal(rec.metadata.numIntents, 3);
  await checkAgainstKnown(rec);
});

test("the committed model file alone, and its bytes, give the known values", async () => {
  await checkAgainstKnown(await Recommender.load(KNOWN_MODEL));
  await checkAgainstKnown(await Recommender.load(await readFile(KNOWN_MODEL)));
});

test("the committed format 3 artifact gives the known values, its encoder graph the embeddings", async () => {
  const rec = await Recommender.load(KNOWN_LARGE);
  assert.equal(rec.metadata.formatVersion, 3);
  assert.notEqual(rec.encoder, null);
  await checkAgainstKnown(rec);
  await checkAgainstKnown(await Recommender.load(`${KNOWN_LARGE}/model.onnx`, { verify: "full" }));
});

for (const source of [KNOWN_ARTIFACT, KNOWN_LARGE]) {
  test(`recommendBatch equals recommend history by history (${source.slice(source.lastIndexOf("/") + 1)})`, async () => {
    await checkBatch(await Recommender.load(source));
  });
}

/** @param {Recommender} rec */
async function checkBatch(rec) {
  const histories = [...KNOWN_VALUES.histories, [12, 1, 2, 3, 4, 5, 6, 7, 8], [3], [99, 4]];
  for (const options of [{ k: 4 }, { k: 8, excludeSeen: false }, { k: 8, exclude: [4, 5] }, { k: 3, batchSize: 2 }]) {
    const batch = await rec.recommendBatch(histories, options);
    assert.equal(batch.length, histories.length);
    for (const [u, history] of histories.entries()) {
      const { batchSize, ...single } = /** @type {any} */ (options);
      const one = await rec.recommend(history, single);
      assert.deepEqual(batch[u].itemIds(), one.itemIds(), `${JSON.stringify(options)} ${JSON.stringify(history)}`);
      assertClose(batch[u].map((r) => r.score), one.map((r) => r.score), 1e-6, JSON.stringify(history));
      assert.deepEqual(batch[u].unknownItems, one.unknownItems);
      assert.equal(batch[u].fallback, one.fallback);
    }
  }
}

test("concurrent calls on one recommender give the sequential results", async () => {
  const rec = await Recommender.load(KNOWN_ARTIFACT);
  const histories = Array.from({ length: 60 }, (_, i) => [1 + (i % 12), 1 + ((i * 7) % 12), 1 + ((i * 5) % 12)]);
  const sequential = [];
  for (const history of histories) sequential.push((await rec.recommend(history, { k: 4 })).itemIds());
  const concurrent = await Promise.all(histories.map((history) => rec.recommend(history, { k: 4 })));
  assert.deepEqual(concurrent.map((r) => r.itemIds()), sequential);
});

test("loading an artifact whose graph has no input guards prints no ONNX Runtime error line", async () => {
  // tests/fixtures/legacy/artifact (the known artifact as exported at commit 1e74028) predates the input guards: an
  // item index beyond num_items fails inside ONNX Runtime, and the load-time probe runs one on purpose. ONNX Runtime
  // writes its log from C++ to the process's stderr, so the load runs in a child process whose stderr is read whole.
  const ort = await import("onnxruntime-node");
  const session = await ort.InferenceSession.create(`${LEGACY_ARTIFACT}/model.onnx`, { logSeverityLevel: 4 });
  const feeds = {
    history: new ort.Tensor("int64", BigInt64Array.of(13n), [1, 1]), // 12 items: index 13 is beyond the table
    exclude: new ort.Tensor("int64", BigInt64Array.of(0n), [1, 1]),
    k: new ort.Tensor("int64", BigInt64Array.of(1n), []),
  };
  await assert.rejects(session.run(feeds, ["user_embedding"], { logSeverityLevel: 4 }), /out of data bounds/);
  const script =
    `const { Recommender } = await import(${JSON.stringify(new URL("../src/node.js", import.meta.url).href)});` +
    `const rec = await Recommender.load(${JSON.stringify(LEGACY_ARTIFACT)});` +
    "console.log(JSON.stringify((await rec.recommend([1, 2], { k: 3 })).itemIds()));";
  const child = spawnSync(process.execPath, ["--input-type=module", "-e", script], { encoding: "utf8" });
  assert.equal(child.status, 0, child.stderr);
  assert.deepEqual(JSON.parse(child.stdout), [5, 3, 4]);
  assert.doesNotMatch(child.stderr, /onnxruntime|out of data bounds/);
});

/**
 * @param {import("../src/results.js").Recommendations} got
 * @param {[number, number | null][]} want
 * @param {string} what
 */
function assertSameList(got, want, what) {
  assert.deepEqual(got.itemIds(), want.map(([item]) => item), `${what}: items`);
  assertClose(got.map((r) => r.score), want.map(([, s]) => (s === null ? NaN : s)), ATOL, `${what}: scores`);
}

for (const source of [KNOWN_ARTIFACT, KNOWN_LARGE]) {
  test(`issue 23's calls give the Python SDK's known values (${source.slice(source.lastIndexOf("/") + 1)})`, async () => {
    // The same calls as tests/test_known_values.py::test_committed_artifacts_give_known_values_of_the_item_calls.
    const rec = await Recommender.load(source);
    if (source === KNOWN_ARTIFACT) assert.equal(rec.version, KNOWN_VALUES.version); // format 3: another graph
    assert.match(rec.version, /^[0-9a-f]{12}$/);
    assert.deepEqual([...rec.metadata.itemIntents], KNOWN_VALUES.item_intents);
    const { histories } = KNOWN_VALUES;
    for (const [u, want] of KNOWN_VALUES.candidates.entries()) {
      const got = await rec.recommend(histories[u], { k: 4, candidates: [2, 5, 7, 8, 9, 11, 99] });
      assertSameList(got, want, `candidates ${JSON.stringify(histories[u])}`);
      assert.deepEqual(got.unknownCandidates, [99]);
    }
    for (const [u, want] of KNOWN_VALUES.score.entries()) {
      assertClose(await rec.score(histories[u], [1, 5, 12, 5]), want, ATOL, `score ${JSON.stringify(histories[u])}`);
    }
    for (const [q, query] of /** @type {any[]} */ ([3, [1, 12]]).entries()) {
      assertSameList(await rec.similarItems(query, { k: 4 }), KNOWN_VALUES.similar[q], `similar ${JSON.stringify(query)}`);
    }
    for (const [u, want] of KNOWN_VALUES.per_intent.entries()) {
      assertSameList(await rec.recommend(histories[u], { k: 4, perIntent: 1 }), want, `perIntent ${JSON.stringify(histories[u])}`);
    }
    // The batch forms give the same lists (Python: recommend_batch(candidates=, candidates_per_history=, per_intent=)).
    const shared = [2, 5, 7, 8, 9, 11, 99];
    const batch = await rec.recommendBatch(histories, { k: 4, candidates: shared });
    for (const [u, want] of KNOWN_VALUES.candidates.entries()) assertSameList(batch[u], want, `batch candidates ${u}`);
    assert.deepEqual(batch[0].unknownCandidates, [99]);
    const diverse = await rec.recommendBatch(histories, { k: 4, perIntent: 1 });
    for (const [u, want] of KNOWN_VALUES.per_intent.entries()) assertSameList(diverse[u], want, `batch perIntent ${u}`);
    const perHistory = [[2, 5, 7, 12], null, ...histories.slice(2).map(() => null)];
    const own = await rec.recommendBatch(histories, { k: 4, candidates: shared, candidatesPerHistory: perHistory });
    const alone = await rec.recommend(histories[0], { k: 4, candidates: [2, 5, 7] }); // 12 is not in the shared list
    assert.deepEqual(own[0].itemIds(), alone.itemIds());
    assertSameList(own[1], KNOWN_VALUES.candidates[1], "batch candidates, a history without its own list");
    await assert.rejects(rec.recommendBatch(histories, { k: 4, candidatesPerHistory: [[2]] }), /candidatesPerHistory has 1 entries/);
  });
}
