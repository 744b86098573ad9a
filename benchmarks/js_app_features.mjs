/**
 * Latency of issue 23's calls in the JavaScript SDK (onnxruntime-node, 1 thread), each as a ratio to the
 * unrestricted `recommend` in the same run: the JavaScript counterpart of benchmarks/app_features.py.
 *
 *     flock /tmp/s4rec-cpu.lock node benchmarks/js_app_features.mjs --artifact /tmp/i23/beauty_art \
 *         --data ../shared/data/beauty.txt [--users 1000] [--rounds 3]
 *
 * Histories: the test protocol's inputs (every item but the last) of the first `--users` users of `--data`.
 * Each round times, in blocks of 100 users with every method over each block in turn (so that the machine's
 * load moves every method alike), the unrestricted `recommend(history, {k: 10})` (the baseline) and:
 * `candidates` 100 random catalogue items drawn per user (seed 0), `score` of 50 random items,
 * `similarItems` of the history's last item (k 10), `perIntent: 2` (k 10). Per method: p50 and p99 per
 * round (performance.now()), the median over rounds, and the ratio of its p50 to the baseline's in the same
 * round (median over rounds). Prints the load average (os.loadavg()) before and after.
 */

import { readFileSync } from "node:fs";
import { loadavg } from "node:os";
import { fileURLToPath } from "node:url";

const { Recommender } = await import(new URL("../js/src/node.js", import.meta.url).href);

const args = Object.fromEntries(
  process.argv.slice(2).reduce((pairs, arg, i, all) => (arg.startsWith("--") ? [...pairs, [arg.slice(2), all[i + 1]]] : pairs), []),
);
if (!args.artifact || !args.data) {
  console.error("usage: node benchmarks/js_app_features.mjs --artifact DIR --data beauty.txt [--users N] [--rounds R]");
  process.exit(2);
}
const users = Number(args.users ?? 1000);
const rounds = Number(args.rounds ?? 3);
const load = () => `load average ${loadavg().map((x) => x.toFixed(2)).join(" ")}`;

/** A small seeded generator (mulberry32), so that every run draws the same candidates. */
function random(seed) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const rec = await Recommender.load(args.artifact);
const ids = rec.metadata.itemIds;
const known = new Set(ids);
const histories = readFileSync(args.data, "utf8")
  .split("\n")
  .filter(Boolean)
  .slice(0, users)
  .map((line) => line.trim().split(/\s+/).slice(1).map((t) => (/^-?\d+$/.test(t) ? Number(t) : t)).slice(0, -1))
  .filter((h) => h.length && known.has(h[h.length - 1]));
const next = random(0);
const draw = (n) => Array.from({ length: n }, () => ids[Math.floor(next() * ids.length)]);
const candidates = histories.map(() => draw(100));
const scored = histories.map(() => draw(50));

const methods = {
  "recommend (baseline)": (h) => rec.recommend(h, { k: 10 }),
  "candidates 100": (h, u) => rec.recommend(h, { k: 10, candidates: candidates[u] }),
  "score 50": (h, u) => rec.score(h, scored[u]),
  similarItems: (h) => rec.similarItems(h[h.length - 1], { k: 10 }),
  "perIntent 2": (h) => rec.recommend(h, { k: 10, perIntent: 2 }),
};
const quantile = (values, q) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
};
const median = (values) => quantile(values, 0.5);

console.log(`${rec.source}: ${rec.metadata.numItems} items, d ${rec.metadata.embeddingDim}, ${histories.length} histories, ${rounds} rounds`);
console.log(`before: ${load()}`);
for (const call of Object.values(methods)) for (const [u, h] of histories.slice(0, 200).entries()) await call(h, u); // warm-up
/** @type {Record<string, { p50: number[], p99: number[], ratio: number[] }>} */
const figures = Object.fromEntries(Object.keys(methods).map((name) => [name, { p50: [], p99: [], ratio: [] }]));
for (let round = 0; round < rounds; round++) {
  const times = Object.fromEntries(Object.keys(methods).map((name) => [name, []]));
  for (let start = 0; start < histories.length; start += 100) {
    for (const [name, call] of Object.entries(methods)) {
      for (let u = start; u < Math.min(start + 100, histories.length); u++) {
        const t = performance.now();
        await call(histories[u], u);
        times[name].push(performance.now() - t);
      }
    }
  }
  const base = median(times["recommend (baseline)"]);
  for (const [name, values] of Object.entries(times)) {
    figures[name].p50.push(median(values));
    figures[name].p99.push(quantile(values, 0.99));
    figures[name].ratio.push(median(values) / base);
  }
}
console.log("method: p50 / p99 ms (median of rounds), p50 / baseline p50 (median of rounds, range)");
for (const [name, f] of Object.entries(figures)) {
  const range = `${Math.min(...f.ratio).toFixed(2)}-${Math.max(...f.ratio).toFixed(2)}`;
  console.log(`  ${name}: ${median(f.p50).toFixed(3)} / ${median(f.p99).toFixed(3)} ms, ${median(f.ratio).toFixed(2)}x (${range})`);
}
console.log(`after: ${load()}`);
console.log(`node ${process.version}, onnxruntime-node ${JSON.stringify((await Recommender.runtime()).env?.versions ?? {})}`);
console.log(`command (in ${process.cwd()}): flock /tmp/s4rec-cpu.lock node ${fileURLToPath(import.meta.url).replace(process.cwd() + "/", "")} ${process.argv.slice(2).join(" ")}`);
