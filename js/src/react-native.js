/**
 * s4rec for React Native: the {@link Recommender} on onnxruntime-react-native, unless `options.ort` says
 * otherwise. Sources are absolute URLs (fetched) or the model's bytes (e.g. read with expo-file-system or
 * react-native-fs from a file shipped with the app).
 */

import { S4RecError } from "./errors.js";
import { Recommender as CoreRecommender } from "./recommender.js";

export * from "./index.js";

/** The {@link CoreRecommender} with onnxruntime-react-native as its default runtime. */
export class Recommender extends CoreRecommender {
  static sessionDefaults = { executionProviders: ["cpu"] };

  /** @returns {Promise<import("./recommender.js").Runtime>} */
  static async runtime() {
    try {
      // @ts-ignore: onnxruntime-react-native is the app's dependency, not installed with this package
      return await import("onnxruntime-react-native");
    } catch (e) {
      throw new S4RecError(
        `onnxruntime-react-native could not be imported (${e instanceof Error ? e.message : e}). Install it ` +
          "(npm install onnxruntime-react-native, then rebuild the app), or pass Recommender.load(source, { ort }).",
      );
    }
  }
}
