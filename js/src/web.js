/**
 * s4rec for browsers (and web workers): the {@link Recommender} on onnxruntime-web's WASM backend, unless
 * `options.ort` says otherwise. Sources are URLs, absolute or relative to the page, or bytes.
 *
 * Without a bundler, an import map must resolve "onnxruntime-web" (examples/web/index.html shows one), or
 * pass `{ ort }` imported from wherever the page serves onnxruntime-web.
 */

import { S4RecError } from "./errors.js";
import { Recommender as CoreRecommender } from "./recommender.js";

export * from "./index.js";

/** The {@link CoreRecommender} with onnxruntime-web as its default runtime. */
export class Recommender extends CoreRecommender {
  static sessionDefaults = { executionProviders: ["wasm"] };

  /** @returns {Promise<import("./recommender.js").Runtime>} */
  static async runtime() {
    try {
      return await import("onnxruntime-web");
    } catch (e) {
      throw new S4RecError(
        `onnxruntime-web could not be imported (${e instanceof Error ? e.message : e}). Install it (npm install ` +
          'onnxruntime-web), map "onnxruntime-web" in the page\'s import map, or pass Recommender.load(source, { ort }).',
      );
    }
  }
}
