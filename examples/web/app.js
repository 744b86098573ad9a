/**
 * The example page: load an s4rec artifact with onnxruntime-web and show recommendations for a history
 * typed in. Query parameters: `artifact` (URL of the artifact directory, default "artifact/"), `variant`
 * (fp32 or int8), `threads` (onnxruntime-web's WASM threads, default 1; more than 1 needs a cross-origin
 * isolated page, i.e. the COOP/COEP headers serve.py sends), `history` (to fill the field in).
 *
 * `window.s4recDemo` exposes the loaded recommender and the last rendering for tests and benchmarks.
 */

import * as ort from "onnxruntime-web";
import { Recommender } from "s4rec";

const params = new URLSearchParams(location.search);
const $ = (/** @type {string} */ id) => /** @type {HTMLElement} */ (document.getElementById(id));
const historyInput = /** @type {HTMLInputElement} */ ($("history"));
const kInput = /** @type {HTMLInputElement} */ ($("k"));

// Global to onnxruntime-web and read when the first session is made: set it before loading.
ort.env.wasm.numThreads = Number(params.get("threads") ?? 1);

const demo = {
  /** @type {Promise<Recommender>} */
  ready: Recommender.load(params.get("artifact") ?? "artifact/", { ort, variant: params.get("variant") ?? "fp32" }),
  /** @type {Promise<void> | null} the rendering in progress or last done */
  pending: null,
  /** @type {number | null} ms from navigation start to the recommender loaded (runtime, model, session) */
  loadedMs: null,
  /** @type {number | null} ms from navigation start to the first recommendations on screen */
  firstRecommendationMs: null,
};
Object.assign(window, { s4recDemo: demo });

/**
 * "12, 7 301" -> [12, 7, 301] (integers become numbers); a JSON array is taken as it is (string ids).
 *
 * @param {string} text
 * @returns {unknown[]}
 */
function parseHistory(text) {
  const trimmed = text.trim();
  if (trimmed.startsWith("[")) return JSON.parse(trimmed);
  return trimmed.split(/[\s,]+/).filter(Boolean).map((token) => (/^-?\d+$/.test(token) ? Number(token) : token));
}

/**
 * The inverse of parseHistory: integers as "1, 2, 3", anything else as a JSON array.
 *
 * @param {ReadonlyArray<unknown>} ids
 */
function formatHistory(ids) {
  return ids.every(Number.isInteger) ? ids.join(", ") : JSON.stringify(ids);
}

/** @param {Recommender} rec */
async function render(rec) {
  const results = $("results");
  const report = $("report");
  try {
    const history = parseHistory(historyInput.value);
    const list = await rec.recommend(/** @type {any} */ (history), { k: Number(kInput.value) });
    results.replaceChildren(
      ...list.map(({ item, score }) => {
        const li = document.createElement("li");
        li.dataset.item = JSON.stringify(item); // keeps 5 and "5" apart
        li.dataset.score = String(score);
        li.textContent = String(item);
        const span = document.createElement("span");
        span.className = "score";
        span.textContent = Number.isNaN(score) ? "(popular)" : score.toFixed(4);
        li.append(span);
        return li;
      }),
    );
    const notes = [];
    if (list.fallback) notes.push("No known item in this history: the most popular items.");
    if (list.unknownItems.length) notes.push(`Ignored unknown ids: ${list.unknownItems.map((i) => JSON.stringify(i)).join(", ")}.`);
    report.textContent = notes.join(" ");
  } catch (error) {
    results.replaceChildren();
    report.textContent = `${/** @type {Error} */ (error).name}: ${/** @type {Error} */ (error).message}`;
  }
  demo.firstRecommendationMs ??= performance.now();
}

demo.ready.then(
  async (rec) => {
    demo.loadedMs = performance.now();
    const m = rec.metadata;
    $("status").textContent =
      `${m.numItems.toLocaleString()} items, ${m.variant}, embedding ${m.embeddingDim}, ` +
      `${m.numIntents} intents; up to ${m.maxLen} items of history and ${m.topK} per list.`;
    kInput.max = String(m.topK);
    kInput.value = String(Math.min(10, m.topK));
    historyInput.value = params.get("history") ?? formatHistory(m.itemIds.slice(0, 3));
    historyInput.disabled = false;
    /** @type {HTMLButtonElement} */ ($("recommend")).disabled = false;
    $("form").addEventListener("submit", (event) => {
      event.preventDefault();
      demo.pending = render(rec);
    });
    demo.pending = render(rec);
  },
  (error) => {
    $("status").textContent = `${error.name}: ${error.message}`;
    $("status").className = "error";
  },
);
