/**
 * s4rec for JavaScript, runtime-neutral entry (`s4rec/core`): pass the ONNX Runtime module yourself,
 * `Recommender.load(source, { ort })`. The entries `s4rec/web`, `s4rec/node` and `s4rec/react-native` (and
 * plain `s4rec`, which picks one of them by environment) bring their runtime themselves.
 *
 * @example
 * import * as ort from "onnxruntime-web";
 * import { Recommender } from "s4rec/core";
 * const rec = await Recommender.load("artifact/", { ort });
 * const top = await rec.recommend([12, 7, 301], { k: 10 }); // [{item, score}, ...], best first
 */

export { ArtifactError, ArtifactVersionError, ChecksumError, S4RecError, UnknownItemError } from "./errors.js";
export { FORMAT, FORMAT_VERSION, READ_FORMAT_VERSIONS } from "./metadata.js";
export { Recommender } from "./recommender.js";
export { Recommendations } from "./results.js";
