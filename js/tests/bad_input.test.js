/**
 * Bad input, as docs/sdk.md defines it for the Python SDK: each row is an input and either the error it
 * raises (class and message fragment) or the behaviour it gets. On the committed micro model: 12 items,
 * max_len 5, top_k 8 (below the default k of 10, which is then a RangeError, as in Python), 3 intents.
 */

import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { before, describe, test } from "node:test";

import { ArtifactVersionError, Recommendations, Recommender, S4RecError, UnknownItemError } from "../src/node.js";
import { assertClose, KNOWN_ARTIFACT, KNOWN_MODEL, withMetadata } from "./helpers.js";
import { readMetadataProps } from "../src/protobuf.js";

/** @type {Recommender} */
let rec;
before(async () => {
  rec = await Recommender.load(KNOWN_ARTIFACT);
});

/**
 * Calls that must throw: [what, call, error class, message fragment].
 *
 * @type {[string, (rec: Recommender) => unknown, new (...args: any[]) => Error, RegExp][]}
 */
const ERRORS = [
  ["a string as history", (r) => r.recommend(/** @type {any} */ ("1 2"), { k: 3 }), TypeError, /history must be an array .* got string "1 2"/],
  ["null as history", (r) => r.recommend(/** @type {any} */ (null), { k: 3 }), TypeError, /history must be an array .* got null/],
  ["no history", (r) => r.recommend(/** @type {any} */ (undefined), { k: 3 }), TypeError, /history must be an array/],
  ["a number as history", (r) => r.recommend(/** @type {any} */ (5), { k: 3 }), TypeError, /got number 5/],
  ["a Set as history (no order)", (r) => r.recommend(/** @type {any} */ (new Set([1])), { k: 3 }), TypeError, /got Set \[1\]/],
  ["an object as history", (r) => r.recommend(/** @type {any} */ ({ 0: 1 }), { k: 3 }), TypeError, /got object \{"0":1\}/],
  ["a Float64Array", (r) => r.recommend(/** @type {any} */ (Float64Array.of(1, 2)), { k: 3 }), TypeError, /got Float64Array/],
  ["a float id", (r) => r.recommend([1, 2.5], { k: 3 }), TypeError, /item ids must be integers or strings, got number 2.5/],
  ["a bool id", (r) => r.recommend(/** @type {any} */ ([1, true]), { k: 3 }), TypeError, /got boolean true/],
  ["a null id", (r) => r.recommend(/** @type {any} */ ([null]), { k: 3 }), TypeError, /got null/],
  ["NaN as id", (r) => r.recommend([NaN], { k: 3 }), TypeError, /got number NaN/],
  ["a list as id", (r) => r.recommend(/** @type {any} */ ([[1]]), { k: 3 }), TypeError, /got array \[1\]/],
  ["the default k (10) > top_k", (r) => r.recommend([1]), RangeError, /k must be in 1\.\.8 \(the artifact's top_k\), got 10/],
  ["k = 0", (r) => r.recommend([1], { k: 0 }), RangeError, /k must be in 1\.\.8 \(the artifact's top_k\), got 0/],
  ["k > top_k", (r) => r.recommend([1], { k: 9 }), RangeError, /k must be in 1\.\.8 .*re-export with a larger --top-k/],
  ["k < 0", (r) => r.recommend([1], { k: -1 }), RangeError, /got -1/],
  ["k a string", (r) => r.recommend([1], { k: /** @type {any} */ ("5") }), TypeError, /k must be an integer, got string "5"/],
  ["k a float", (r) => r.recommend([1], { k: 2.5 }), TypeError, /k must be an integer, got number 2.5/],
  ["k a bool", (r) => r.recommend([1], { k: /** @type {any} */ (true) }), TypeError, /k must be an integer/],
  ["k null", (r) => r.recommend([1], { k: /** @type {any} */ (null) }), TypeError, /k must be an integer, got null/],
  ["an unknown policy", (r) => r.recommend([1], { k: 3, unknown: /** @type {any} */ ("skip") }), RangeError, /unknown must be one of \["ignore","error"\], got string "skip"/],
  ["options not an object", (r) => r.recommend([1], /** @type {any} */ (5)), TypeError, /options must be an object such as \{k: \.\.\.\}/],
  ["a snake_case option", (r) => r.recommend([1], /** @type {any} */ ({ k: 3, exclude_seen: false })), TypeError, /unknown option\(s\) \["exclude_seen"\]/],
  ["excludeSeen not a bool", (r) => r.recommend([1], { k: 3, excludeSeen: /** @type {any} */ ("yes") }), TypeError, /excludeSeen must be true or false/],
  ["exclude a string", (r) => r.recommend([1], { k: 3, exclude: /** @type {any} */ ("12") }), TypeError, /exclude must be an array or a Set/],
  ["exclude a number", (r) => r.recommend([1], { k: 3, exclude: /** @type {any} */ (4) }), TypeError, /exclude must be an array or a Set/],
  ["a float in exclude", (r) => r.recommend([1], { k: 3, exclude: [1.5] }), TypeError, /item ids must be integers or strings/],
  ["unknown ids with unknown: error", (r) => r.recommend([1, 99, "x"], { k: 3, unknown: "error" }), UnknownItemError, /2 item id\(s\) unknown to the model: 99, "x"\. Remove them, or use unknown: "ignore"/],
  ["histories a string", (r) => r.recommendBatch(/** @type {any} */ ("abc"), { k: 3 }), TypeError, /histories must be an array of histories/],
  ["histories an object", (r) => r.recommendBatch(/** @type {any} */ ({}), { k: 3 }), TypeError, /histories must be an array of histories/],
  ["a string among histories", (r) => r.recommendBatch(/** @type {any} */ ([[1], "2"]), { k: 3 }), TypeError, /history must be an array/],
  ["batchSize 0", (r) => r.recommendBatch([[1]], { k: 3, batchSize: 0 }), RangeError, /batchSize must be >= 1, got 0/],
  ["unknown ids in a batch with unknown: error", (r) => r.recommendBatch([[1], [2, 98], [99]], { k: 3, unknown: "error" }), UnknownItemError, /1 item id\(s\) unknown to the model: 98\./],
  ["embed of a string", (r) => r.embed(/** @type {any} */ ("1")), TypeError, /history must be an array/],
  ["embed with unknown: error", (r) => r.embed([99], { unknown: "error" }), UnknownItemError, /99/],
  ["intents top 0", (r) => r.intents([1], { top: 0 }), RangeError, /top must be >= 1, got 0/],
  ["intents top > num_intents", (r) => r.intents([1], { top: 4 }), RangeError, /top must be in 1\.\.3 \(the number of intents\), got 4/],
  ["intents top a string", (r) => r.intents([1], { top: /** @type {any} */ ("3") }), TypeError, /top must be an integer/],
  ["itemsForIntent out of range", (r) => r.itemsForIntent(3), RangeError, /intent must be in 0\.\.2, got 3/],
  ["itemsForIntent negative", (r) => r.itemsForIntent(-1), RangeError, /intent must be in 0\.\.2/],
  ["itemsForIntent a float", (r) => r.itemsForIntent(1.5), TypeError, /intent must be an integer/],
  ["itemsForIntent a string", (r) => r.itemsForIntent(/** @type {any} */ ("0")), TypeError, /intent must be an integer/],
  ["itemsForIntent k > top_k", (r) => r.itemsForIntent(0, 9), RangeError, /k must be in 1\.\.8/],
  // issue 23's calls: candidates, perIntent, score, similarItems
  ["candidates a string", (r) => r.recommend([1], { k: 3, candidates: /** @type {any} */ ("1 2") }), TypeError, /candidates must be an array or a Set of item ids, got string "1 2"/],
  ["candidates null", (r) => r.recommend([1], { k: 3, candidates: /** @type {any} */ (null) }), TypeError, /candidates must be an array or a Set/],
  ["candidates a Map", (r) => r.recommend([1], { k: 3, candidates: /** @type {any} */ (new Map([[1, 2]])) }), TypeError, /candidates must be an array or a Set/],
  ["a float among candidates", (r) => r.recommend([1], { k: 3, candidates: [2, 2.5] }), TypeError, /item ids must be integers or strings \(in candidates\), got number 2\.5/],
  ["a bool among candidates", (r) => r.recommend([1], { k: 3, candidates: /** @type {any} */ ([true]) }), TypeError, /\(in candidates\), got boolean true/],
  ["unknown candidates with unknown: error", (r) => r.recommend([1], { k: 3, candidates: [2, 99], unknown: "error" }), UnknownItemError, /1 item id\(s\) in candidates unknown to the model: 99/],
  ["perIntent a string", (r) => r.recommend([1], { k: 3, perIntent: /** @type {any} */ ("2") }), TypeError, /perIntent must be an integer, got string "2"/],
  ["perIntent 0", (r) => r.recommend([1], { k: 3, perIntent: 0 }), RangeError, /perIntent must be >= 1, got 0/],
  ["per_intent (Python's name)", (r) => r.recommend([1], /** @type {any} */ ({ k: 3, per_intent: 2 })), TypeError, /unknown option\(s\) \["per_intent"\]/],
  ["score of a string", (r) => r.score([1], /** @type {any} */ ("2")), TypeError, /items must be an array or a Set of item ids, got string "2"/],
  ["score without items", (r) => r.score([1], /** @type {any} */ (undefined)), TypeError, /items must be an array or a Set/],
  ["score of a float id", (r) => r.score([1], [1.5]), TypeError, /\(in items\), got number 1\.5/],
  ["score with unknown: error", (r) => r.score([1], [2, 99], { unknown: "error" }), UnknownItemError, /1 item id\(s\) in items unknown to the model: 99/],
  ["score of a string history", (r) => r.score(/** @type {any} */ ("1"), [2]), TypeError, /history must be an array/],
  ["similarItems of an unknown item", (r) => r.similarItems(99, { k: 3 }), UnknownItemError, /similarItems: no item of the query is known to the model \(99\)/],
  ["similarItems of no item", (r) => r.similarItems([], { k: 3 }), UnknownItemError, /no item of the query is known to the model \(none given\)/],
  ["similarItems of a bool", (r) => r.similarItems(/** @type {any} */ (true), { k: 3 }), TypeError, /items must be an array or a Set of item ids, got boolean true/],
  ["similarItems of an object", (r) => r.similarItems(/** @type {any} */ ({ 1: 2 }), { k: 3 }), TypeError, /items must be an array or a Set/],
  ["similarItems k > top_k", (r) => r.similarItems(1, { k: 9 }), RangeError, /k must be in 1\.\.8/],
  ["similarItems unknown query items with unknown: error", (r) => r.similarItems([1, 99], { k: 3, unknown: "error" }), UnknownItemError, /in items unknown to the model: 99/],
  ["similarItems with excludeSeen", (r) => r.similarItems(1, /** @type {any} */ ({ k: 3, excludeSeen: true })), TypeError, /unknown option\(s\) \["excludeSeen"\]/],
];

describe("bad input raises the documented error", () => {
  for (const [what, call, type, message] of ERRORS) {
    test(what, async () => {
      await assert.rejects(async () => call(rec), (/** @type {any} */ error) => {
        assert.ok(error instanceof type, `${what}: ${error?.constructor?.name} is not a ${type.name}: ${error?.message}`);
        assert.match(error.message, message);
        return true;
      });
    });
  }
});

describe("bad input with defined behaviour", () => {
  test("unknown ids are ignored and reported", async () => {
    const got = await rec.recommend([1, 99, "x", 2], { k: 5 });
    const want = await rec.recommend([1, 2], { k: 5 });
    assert.deepEqual(got.itemIds(), want.itemIds());
    assert.deepEqual(got.unknownItems, [99, "x"]);
    assert.equal(got.fallback, false);
    assert.deepEqual(want.unknownItems, []);
  });

  test("unknown: error raises an UnknownItemError (an S4RecError) carrying the ids", async () => {
    const error = await rec.recommend([1, 99, "x"], { k: 3, unknown: "error" }).catch((e) => e);
    assert.ok(error instanceof UnknownItemError && error instanceof S4RecError);
    assert.deepEqual(error.items, [99, "x"]);
    assert.equal(error.name, "UnknownItemError");
  });

  test("the load-time unknown policy is the default, and a call may override it", async () => {
    const strict = await Recommender.load(KNOWN_ARTIFACT, { unknown: "error" });
    await assert.rejects(strict.recommend([99], { k: 3 }), UnknownItemError);
    assert.deepEqual((await strict.recommend([99], { k: 3, unknown: "ignore" })).unknownItems, [99]);
  });

  test('5 and "5" are different ids', async () => {
    const asString = await rec.recommend(["5"], { k: 3 });
    assert.deepEqual(asString.unknownItems, ["5"]);
    assert.equal(asString.fallback, true);
    assert.equal((await rec.recommend([5], { k: 3 })).fallback, false);
  });

  test("an empty history gets the popular items, scores NaN, flagged fallback; exclude still applies", async () => {
    const got = await rec.recommend([], { k: 3 });
    assert.ok(got instanceof Recommendations && got.fallback);
    assert.deepEqual(got.itemIds(), rec.metadata.popularItems.slice(0, 3).map((i) => rec.metadata.itemIds[i - 1]));
    assert.ok(got.every((r) => Number.isNaN(r.score)));
    const excluded = await rec.recommend([], { k: 3, exclude: [got[0].item] });
    assert.deepEqual(excluded.itemIds(), [...got.itemIds().slice(1), excluded[2].item]);
    assert.ok(!excluded.itemIds().includes(got[0].item));
  });

  test("a history of unknown ids only is the fallback, with the ids reported", async () => {
    const got = await rec.recommend([99, "x"], { k: 3 });
    assert.equal(got.fallback, true);
    assert.deepEqual(got.unknownItems, [99, "x"]);
  });

  test("an over-long history keeps the most recent max_len items; all of it counts as seen", async () => {
    const history = [12, 11, 10, 1, 2, 3, 4, 5]; // max_len 5
    const got = await rec.recommend(history, { k: 4 });
    assert.ok(got.every((r) => !history.includes(/** @type {number} */ (r.item))), JSON.stringify(got.itemIds()));
    const recent = await rec.recommend(history.slice(-5), { k: 4, exclude: history.slice(0, -5) });
    assert.deepEqual(got.itemIds(), recent.itemIds());
    assert.deepEqual(got.map((r) => r.score), recent.map((r) => r.score));
    const unexcluded = await rec.recommend(history, { k: 8, excludeSeen: false });
    const recentUnexcluded = await rec.recommend(history.slice(-5), { k: 8, excludeSeen: false });
    assert.deepEqual(unexcluded.itemIds(), recentUnexcluded.itemIds());
    assert.deepEqual(await rec.embed(history), await rec.embed(history.slice(-5)));
  });

  test("exclusions leaving fewer than k items give a shorter list (no -inf entries)", async () => {
    const history = [1, 2, 3, 4, 5, 6];
    const got = await rec.recommend(history, { k: 8, exclude: new Set([7, 8]) });
    assert.deepEqual(got.itemIds().sort((a, b) => Number(a) - Number(b)), [9, 10, 11, 12]);
    assert.ok(got.every((r) => Number.isFinite(r.score)));
    const batch = await rec.recommendBatch([history, [1]], { k: 8, exclude: [7, 8] });
    assert.deepEqual(batch[0].itemIds(), got.itemIds());
    assert.equal(batch[1].length, 8);
  });

  test("integer typed arrays and bigints are histories of integer ids", async () => {
    const want = (await rec.recommend([2, 3, 4], { k: 5 })).itemIds();
    assert.deepEqual((await rec.recommend(Int32Array.of(2, 3, 4), { k: 5 })).itemIds(), want);
    assert.deepEqual((await rec.recommend(BigInt64Array.of(2n, 3n, 4n), { k: 5 })).itemIds(), want);
    assert.deepEqual((await rec.recommend([2n, 3n, 4n], { k: 5 })).itemIds(), want);
    assert.deepEqual((await rec.recommend([2, 2n ** 60n], { k: 5 })).unknownItems, [2n ** 60n]);
  });

  test("results are arrays of {item, score}, best first; array methods give plain arrays", async () => {
    const got = await rec.recommend([1], { k: 4 });
    assert.ok(Array.isArray(got) && got.length === 4);
    assert.deepEqual(Object.keys(got[0]), ["item", "score"]);
    assert.ok(got.every((r, i) => i === 0 || got[i - 1].score >= r.score));
    const mapped = got.map((r) => r.item);
    assert.ok(!(mapped instanceof Recommendations));
    assert.equal(JSON.stringify(got), JSON.stringify([...got]));
  });

  test("embed and intents of an empty history are the model's no-history outputs", async () => {
    const vector = await rec.embed([]);
    assert.equal(vector.length, rec.metadata.embeddingDim);
    assert.deepEqual(await rec.embed([99]), vector);
    const intents = await rec.intents([], { top: 3 });
    assert.equal(intents.length, 3);
    assert.ok(Math.abs(intents.reduce((sum, i) => sum + i.probability, 0) - 1) < 1e-5);
  });

  test("candidates: unknown ids ignored and reported, duplicates once, the exclusions still apply", async () => {
    const got = await rec.recommend([1, 2], { k: 5, candidates: [3, 99, 4, 3, "x", 2, 5] });
    assert.deepEqual(new Set(got.itemIds()), new Set([3, 4, 5]));
    assert.deepEqual(got.unknownCandidates, [99, "x"]);
    assert.equal(got.fallback, false);
    const scores = await rec.score([1, 2], got.itemIds());
    assertClose(got.map((r) => r.score), scores, 1e-6, "candidates' scores are score()'s");
    const all = await rec.recommend([1, 2], { k: 8, excludeSeen: false });
    const ranked = all.itemIds().filter((i) => [3, 4, 5].includes(/** @type {number} */ (i)));
    assert.deepEqual(got.itemIds(), ranked, "in the model's order");
  });

  test("empty candidates give an empty list, not the popular items; k beyond what remains a shorter one", async () => {
    const empty = await rec.recommend([1], { k: 3, candidates: [] });
    assert.ok(empty instanceof Recommendations);
    assert.equal(empty.length, 0);
    assert.equal(empty.fallback, false);
    assert.equal((await rec.recommend([1], { k: 3, candidates: [99] })).length, 0);
    assert.equal((await rec.recommend([1], { k: 3, candidates: [1] })).length, 0); // only a seen item
    assert.deepEqual((await rec.recommend([1], { k: 8, candidates: new Set([2, 3]) })).length, 2);
    const none = await rec.recommend([], { k: 3, candidates: [] });
    assert.equal(none.length, 0);
    assert.equal(none.fallback, true);
  });

  test("an empty history with candidates: the most popular candidates first, then the others in catalogue order", async () => {
    const popular = rec.metadata.popularItems.map((i) => rec.metadata.itemIds[i - 1]);
    const candidates = [12, 11, popular[1], popular[0]];
    const got = await rec.recommend([], { k: 4, candidates });
    assert.equal(got.fallback, true);
    assert.deepEqual(got.itemIds().slice(0, 2), [popular[0], popular[1]]);
    assert.deepEqual(new Set(got.itemIds()), new Set(candidates));
    assert.ok(got.every((r) => Number.isNaN(r.score)));
  });

  test("perIntent keeps at most n items of one intent, in the model's order", async () => {
    const intents = rec.metadata.itemIntents;
    const intentOf = (/** @type {any} */ item) => intents[rec.metadata.itemIds.indexOf(item)];
    for (const history of [[1], [2, 3, 4], [7, 7, 7], []]) {
      for (const perIntent of [1, 2]) {
        const got = await rec.recommend(history, { k: 5, perIntent });
        const counts = new Map();
        for (const item of got.itemIds()) counts.set(intentOf(item), (counts.get(intentOf(item)) ?? 0) + 1);
        assert.ok([...counts.values()].every((c) => c <= perIntent), `${JSON.stringify(history)} ${perIntent}`);
        assert.equal(got.length, Math.min(5, 3 * perIntent), "as many as the 3 intents allow");
      }
    }
  });

  test("score: unknown ids score NaN and are reported; duplicates score alike; an empty history is NaN, fallback", async () => {
    const got = await rec.score([1, 98], [2, 99, 2, "x"]);
    assert.ok(Number.isFinite(got[0]) && got[0] === got[2]);
    assert.ok(Number.isNaN(got[1]) && Number.isNaN(got[3]));
    assert.deepEqual(got.unknownItems, [99, "x"]);
    assert.deepEqual(got.unknownHistory, [98]);
    assert.equal(got.fallback, false);
    const recommended = await rec.recommend([1], { k: 3, excludeSeen: false });
    assertClose(await rec.score([1], recommended.itemIds()), recommended.map((r) => r.score), 1e-6, "recommend's scores");
    const cold = await rec.score([99], [2, 3]);
    assert.ok(cold.fallback && cold.every(Number.isNaN));
  });

  test("similarItems: the query and exclude left out, within candidates, unknown query ids reported", async () => {
    const got = await rec.similarItems([1, 99], { k: 4, exclude: [2] });
    assert.deepEqual(got.unknownItems, [99]);
    assert.ok(!got.itemIds().includes(1) && !got.itemIds().includes(2));
    assert.ok(got.every((r) => r.score >= -1 - 1e-6 && r.score <= 1 + 1e-6), "cosines");
    assert.deepEqual((await rec.similarItems(1, { k: 8 })).length, 8);
    const within = await rec.similarItems(1, { k: 4, candidates: [1, 3, 4, 77] });
    assert.deepEqual(new Set(within.itemIds()), new Set([3, 4]));
    assert.deepEqual(within.unknownCandidates, [77]);
  });

  test("perIntent on an artifact exported before item intents were stored: ArtifactVersionError naming the re-export", async () => {
    const bytes = new Uint8Array(await readFile(KNOWN_MODEL));
    const older = withMetadata(bytes, (v) => Object.assign(v, { item_intents: [] }), readMetadataProps(bytes, "model"));
    const old = await Recommender.load(older);
    await assert.rejects(old.recommend([1], { k: 3, perIntent: 1 }), (/** @type {any} */ e) => e instanceof ArtifactVersionError && /Re-export it from its checkpoint/.test(e.message));
    assert.equal((await old.recommend([1], { k: 3, candidates: [2, 3] })).length, 2, "the other calls work");
  });

  test("a model without intents says so on intents() and itemsForIntent()", async () => {
    const bytes = new Uint8Array(await readFile(KNOWN_MODEL));
    const props = readMetadataProps(bytes, "model");
    const plain = withMetadata(bytes, (v) => Object.assign(v, { num_intents: 0, intent_top_items: [], item_intents: [], intent_temperature: null }), props);
    const noIntents = await Recommender.load(plain);
    await assert.rejects(noIntents.intents([1]), (/** @type {any} */ e) => e instanceof S4RecError && /has no intents/.test(e.message));
    assert.throws(() => noIntents.itemsForIntent(0), /has no intents .* Export an S4Rec checkpoint trained with intents/);
    assert.equal((await noIntents.recommend([1], { k: 3 })).length, 3);
    await assert.rejects(noIntents.recommend([1], { k: 3, perIntent: 1 }), (/** @type {any} */ e) => e instanceof S4RecError && /has no intents .* perIntent cannot apply/.test(e.message));
  });
});
