/**
 * The one place where an ONNX Runtime session is built, as the Python SDK's `s4rec.session`: the SDK's
 * session defaults, pre-packing off where the manifest asks for it, a format 3 graph's external data (its
 * item tables, read from the sidecar files) and ONNX Runtime's load errors translated into the SDK's errors.
 */

import { ArtifactError, ArtifactVersionError } from "./errors.js";
import { describe } from "./input.js";
import { readExternalDataLocations } from "./protobuf.js";

/** @typedef {import("onnxruntime-common").InferenceSession} InferenceSession */
/** @typedef {import("onnxruntime-common").InferenceSession.SessionOptions} SessionOptions */
/** @typedef {import("./sidecars.js").Sidecars} Sidecars */

/**
 * The parts of ONNX Runtime this SDK uses: what `import * as ort from "onnxruntime-web"` (or -node, or
 * -react-native) gives.
 *
 * @typedef {object} Runtime
 * @property {typeof import("onnxruntime-common").Tensor} Tensor
 * @property {typeof import("onnxruntime-common").InferenceSession} InferenceSession
 * @property {import("onnxruntime-common").Env} [env]
 */

/** @type {SessionOptions} */
export const SESSION_DEFAULTS = {
  executionMode: "sequential",
  intraOpNumThreads: 1, // fastest for a single request on small machines (docs/sdk.md); batches run in turn
  interOpNumThreads: 1,
  graphOptimizationLevel: "all",
  logSeverityLevel: 3, // errors only
  // ONNX Runtime's SkipLayerNormalization fusion was ~7x slower than the LayerNormalization it replaces on
  // 64-wide rows (measured for the Python SDK, which leaves it out too): same graph, same results.
  extra: { optimization: { disable_specified_optimizers: "SkipLayerNormFusion" } },
};

/**
 * @param {unknown} ort
 * @returns {Runtime}
 */
export function checkRuntime(ort) {
  const module = /** @type {any} */ (ort);
  if (typeof module?.InferenceSession?.create !== "function" || typeof module?.Tensor !== "function") {
    throw new TypeError(
      `ort must be an ONNX Runtime module (import * as ort from "onnxruntime-web", or -node, or ` +
        `-react-native), got ${describe(ort)}.`,
    );
  }
  return module;
}

/**
 * The session options with ONNX Runtime's pre-packing of constant weights off (`session.disable_prepacking`),
 * as the manifest asks for large float32 tables: pre-packing would copy the table, for no speed at that size.
 *
 * @param {SessionOptions} options
 * @returns {SessionOptions}
 */
export function withoutPrepacking(options) {
  const extra = /** @type {Record<string, any>} */ (options.extra ?? {});
  return { ...options, extra: { ...extra, session: { ...extra.session, disable_prepacking: "1" } } };
}

/**
 * `options` with the files a graph keeps its initializers in (format 3's item tables), each one a sidecar of the
 * metadata, checked (`js/src/sidecars.js`) and handed to ONNX Runtime:
 *
 * - in Node with onnxruntime-node (a folder on disk, `env.versions.node` set), checked where they lie and read by
 *   ONNX Runtime itself from the artifact directory (the session config `model_external_initializers_file_folder_path`),
 *   which maps each file: one copy of a table in memory, shared by the model's and the encoder's sessions. Bytes
 *   handed over as `externalData` are copied into each session (measured at 10^5 items, d 64: 2 copies of the
 *   25.6 MB table per session, RSS 201 MB over the runtime after load against 30 MB so; benchmarks/js_large_catalogue.py);
 * - elsewhere (browsers, React Native, a runtime passed as `ort` without `env.versions.node`), the checked bytes as
 *   the `externalData` session option `[{ path, data }]`.
 *
 * @param {Runtime} ort
 * @param {Uint8Array} bytes the graph
 * @param {string} name the graph's path or URL, for messages
 * @param {Sidecars | null} files the model's sidecar files (null: format 2, or bytes)
 * @param {SessionOptions} options
 * @returns {Promise<SessionOptions>}
 */
export async function withExternalData(ort, bytes, name, files, options) {
  const locations = readExternalDataLocations(bytes, name);
  if (!locations.length) return options;
  if (files === null) {
    throw new ArtifactError(
      `${name}: the graph keeps data in the files ${JSON.stringify(locations)}, which are not sidecars of a ` +
        "format 3 artifact. Re-export the artifact with s4rec-export.",
    );
  }
  const sidecars = locations.map((location) => {
    const sidecar = files.nameOf(location);
    if (sidecar === undefined) {
      throw new ArtifactError(
        `${name}: the graph reads external data from ${JSON.stringify(location)}, which the metadata's ` +
          "sidecars table does not list. Re-export the artifact.",
      );
    }
    return sidecar;
  });
  if (files.onDisk && ort.env?.versions?.node !== undefined) {
    const [directory] = await Promise.all(sidecars.map((sidecar) => files.checkOnDisk(sidecar)));
    const extra = /** @type {Record<string, any>} */ (options.extra ?? {});
    const session = { ...extra.session, [EXTERNAL_FOLDER]: directory };
    return { ...options, extra: { ...extra, session } };
  }
  const externalData = await Promise.all(
    sidecars.map(async (sidecar, i) => {
      if (files.entries[sidecar].dtype !== undefined) await files.array(sidecar); // its .npy header, as recorded
      return { path: locations[i], data: await files.bytes(sidecar) };
    }),
  );
  return { ...options, externalData };
}

/** ONNX Runtime's session config key: where a graph loaded from bytes finds its external data files. */
export const EXTERNAL_FOLDER = "model_external_initializers_file_folder_path";

/**
 * A session for a model's bytes; ONNX Runtime's load errors become {@link ArtifactVersionError} (a runtime too
 * old for the model) or {@link ArtifactError}, with what to do.
 *
 * @param {Runtime} ort
 * @param {Uint8Array} bytes
 * @param {SessionOptions} options
 * @param {string} name
 * @returns {Promise<InferenceSession>}
 */
export async function createSession(ort, bytes, options, name) {
  try {
    return await ort.InferenceSession.create(bytes, options);
  } catch (e) {
    const first = (e instanceof Error ? e.message : String(e)).trim().split("\n")[0];
    // ONNX Runtime prefixes its reason with the C++ source position and function: keep the reason.
    const text = /(Unsupported .*|Opset .*|[^:]*not supported.*)/.exec(first)?.[1] ?? first;
    const versions = JSON.stringify(ort.env?.versions ?? {});
    // A runtime whose binding ignores the externalData option looks for the tables on its own disk.
    const folder = /** @type {Record<string, any>} */ (options.extra)?.session?.[EXTERNAL_FOLDER];
    if ((options.externalData?.length || folder !== undefined) && /external data/i.test(first)) {
      throw new ArtifactVersionError(
        `${name}: this ONNX Runtime (${versions}) did not take the model's external data (the item tables, ` +
          `given as the externalData session option): ${text}. Upgrade it (npm install onnxruntime-node@latest, ` +
          "or -web, or -react-native).",
      );
    }
    if (/ir version|opset|domain_version|not supported|unsupported/i.test(text)) {
      throw new ArtifactVersionError(
        `${name}: this ONNX Runtime (${versions}) cannot run the model (${text}). Upgrade it (npm install ` +
          "onnxruntime-web@latest, or -node, or -react-native), or re-export with an older opset.",
      );
    }
    throw new ArtifactError(`${name}: ONNX Runtime cannot load the model (${text}). Re-export it.`);
  }
}
