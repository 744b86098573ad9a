/**
 * Parity with the Python SDK on freshly exported artifacts. tests/test_js.py exports them, computes the
 * Python SDK's results for a set of histories (unknown ids, empty, over-long, exclusions, string ids) and
 * runs this file with S4REC_PARITY=<its JSON file>; without that variable these tests are skipped (run
 * `python -m pytest tests/test_js.py` for them).
 */

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, test } from "node:test";

import * as s4rec from "../src/node.js";
import { assertClose } from "./helpers.js";

const { Recommender } = s4rec;
const PARITY = process.env.S4REC_PARITY;

/**
 * @typedef {{ items: (number | string)[], scores: (number | null)[], unknownItems: (number | string)[], fallback: boolean, unknownCandidates: (number | string)[] }} ExpectedList
 * @typedef {{ scores: (number | null)[], unknownItems: (number | string)[], unknownHistory: (number | string)[], fallback: boolean }} ExpectedScores
 * @typedef {{ call: string, history?: any, histories?: any[], items?: any, options?: any, intent?: number, k?: number, expected?: any, error?: string, errorItems?: any[] }} Case
 * @typedef {{ name: string, source: string, options?: any, atol: number, metadata: Record<string, any>, cases: Case[] }} Artifact
 * @typedef {{ source: string, options?: any, error: string, message: string }} Refusal
 */

/** @type {{ artifacts: Artifact[], refused: Refusal[] }} */
const parity = PARITY ? JSON.parse(readFileSync(PARITY, "utf8")) : { artifacts: [], refused: [] };

/**
 * @param {s4rec.Recommendations} got
 * @param {ExpectedList} want
 * @param {number} atol
 * @param {string} what
 */
function assertSameList(got, want, atol, what) {
  assert.deepEqual(got.itemIds(), want.items, `${what}: items`);
  assertClose(got.map((r) => r.score), want.scores.map((s) => (s === null ? NaN : s)), atol, `${what}: scores`);
  assert.deepEqual([...got.unknownItems], want.unknownItems, `${what}: unknownItems`);
  assert.equal(got.fallback, want.fallback, `${what}: fallback`);
  assert.deepEqual([...got.unknownCandidates], want.unknownCandidates, `${what}: unknownCandidates`);
}

/**
 * The call a case makes (the methods that take more than a history and options).
 *
 * @param {s4rec.Recommender} rec
 * @param {Case} c
 */
function invoke(rec, c) {
  if (c.call === "score") return rec.score(c.history, c.items, c.options);
  if (c.call === "similarItems") return rec.similarItems(c.items, c.options);
  return /** @type {any} */ (rec)[c.call](c.history, c.options);
}

/**
 * @param {s4rec.Recommender} rec
 * @param {Case} c
 * @param {number} atol
 * @param {string} what
 */
async function check(rec, c, atol, what) {
  if (c.error) {
    const error = await Promise.resolve()
      .then(() => invoke(rec, c))
      .then(() => null, (/** @type {any} */ e) => e);
    assert.ok(error instanceof /** @type {any} */ (s4rec)[c.error], `${what}: expected ${c.error}, got ${error}`);
    if (c.errorItems) assert.deepEqual(error.items, c.errorItems, `${what}: error.items`);
  } else if (c.call === "recommend" || c.call === "similarItems") {
    assertSameList(await invoke(rec, c), c.expected, atol, what);
  } else if (c.call === "score") {
    const got = await rec.score(c.history, c.items, c.options);
    /** @type {ExpectedScores} */
    const want = c.expected;
    assertClose(got, want.scores.map((s) => (s === null ? NaN : s)), atol, `${what}: scores`);
    assert.deepEqual([...got.unknownItems], want.unknownItems, `${what}: unknownItems`);
    assert.deepEqual([...got.unknownHistory], want.unknownHistory, `${what}: unknownHistory`);
    assert.equal(got.fallback, want.fallback, `${what}: fallback`);
  } else if (c.call === "version") {
    assert.equal(rec.version, c.expected, what);
  } else if (c.call === "recommendBatch") {
    const got = await rec.recommendBatch(/** @type {any[]} */ (c.histories), c.options);
    assert.equal(got.length, c.expected.length, `${what}: length`);
    got.forEach((list, u) => assertSameList(list, c.expected[u], atol, `${what} [${u}]`));
  } else if (c.call === "embed") {
    assertClose(await rec.embed(c.history), c.expected, atol, what);
  } else if (c.call === "intents") {
    const got = await rec.intents(c.history, c.options);
    assert.deepEqual(got.map((i) => i.intent), c.expected.map((/** @type {number[]} */ [i]) => i), `${what}: intents`);
    assertClose(got.map((i) => i.probability), c.expected.map((/** @type {number[]} */ [, p]) => p), atol, what);
  } else if (c.call === "itemsForIntent") {
    assert.deepEqual(rec.itemsForIntent(/** @type {number} */ (c.intent), c.k), c.expected, what);
  } else {
    assert.fail(`${what}: unknown call ${c.call}`);
  }
}

describe("parity with the Python SDK", { skip: PARITY ? false : "S4REC_PARITY is not set (tests/test_js.py sets it)" }, () => {
  for (const artifact of parity.artifacts) {
    test(`${artifact.name}: ${artifact.cases.length} calls give the Python SDK's results`, async () => {
      const rec = await Recommender.load(artifact.source, artifact.options);
      for (const [key, value] of Object.entries(artifact.metadata)) {
        assert.deepEqual(/** @type {any} */ (rec.metadata)[key], value, `metadata.${key}`);
      }
      for (const [n, c] of artifact.cases.entries()) {
        const args = JSON.stringify(c.history ?? c.items ?? c.intent ?? "");
        await check(rec, c, artifact.atol, `${artifact.name} case ${n} ${c.call}(${args}, ${JSON.stringify(c.options ?? c.k ?? {})})`);
      }
    });
  }

  for (const refusal of parity.refused) {
    test(`refused: ${refusal.source} ${JSON.stringify(refusal.options ?? {})}`, async () => {
      await assert.rejects(Recommender.load(refusal.source, refusal.options), (/** @type {any} */ e) => {
        assert.equal(e.constructor.name, refusal.error, e.message);
        assert.ok(e.message.includes(refusal.message), e.message);
        return true;
      });
    });
  }
});
