/**
 * Finding the model file of an artifact and its bytes: an artifact directory (its manifest `s4rec.json`
 * names the file of each variant with its SHA-256), a single `.onnx` file (checked against the manifest
 * next to it when there is one), or the model's bytes.
 *
 * A {@link Folder} reads files relative to one place; {@link urlFolder} reads over `fetch` (browsers, React
 * Native, Node); the Node entry adds one over the file system.
 */

import { ArtifactError, ArtifactVersionError, ChecksumError } from "./errors.js";
import { checkJsonSize, MAX_MANIFEST_BYTES, MAX_SIDECAR_BYTES, parseJson } from "./json.js";
import { isObject } from "./metadata.js";
import { sha256Hex } from "./sha256.js";
import { utf8Decode } from "./text.js";

export const MANIFEST_NAME = "s4rec.json";
export const MANIFEST_FORMAT = "s4rec-artifact";
export const MANIFEST_FORMAT_VERSION = 1;
// The optional sidecar of a model file: `model.onnx` -> `model.onnx.json` (keys of s4rec.metadata).
export const SIDECAR_SUFFIX = ".json";

/**
 * Files relative to one place (a directory or a URL base).
 *
 * @typedef {object} Folder
 * @property {string} name the place, for messages
 * @property {(file: string, optional?: boolean) => Promise<Uint8Array | null>} read the file's bytes, or
 *   null when it does not exist (with `optional`, also when it cannot be read)
 * @property {(file: string) => Promise<LocalFile | null>} [local] a file on this machine's disk, without reading
 *   it (null: it does not exist); only Node's folders have it
 */

/**
 * A file of a local directory (Node), for checks that need not hold its bytes.
 *
 * @typedef {object} LocalFile
 * @property {string} directory the directory's resolved path (the file lies inside it)
 * @property {number} size
 * @property {(length: number) => Promise<Uint8Array>} head its first `length` bytes (fewer in a shorter file)
 * @property {() => Promise<string>} sha256 its SHA-256 as lowercase hex, read in pieces
 */

/**
 * The model to load: its bytes, its name for messages, and the checksum the manifest records (or null).
 *
 * @typedef {object} ModelFile
 * @property {Uint8Array} bytes
 * @property {string} name
 * @property {string | null} expectedSha256
 * @property {Record<string, unknown> | null} sidecar
 * @property {Folder | null} folder where the model file is (format 3 reads its sidecar files from there);
 *   null for bytes
 * @property {boolean} prepacking false when the manifest's entry says `"prepacking": false` (build the
 *   session with ONNX Runtime's weight pre-packing off, which would copy a large item table)
 * @property {{ bytes: Uint8Array, name: string } | null} fp32 the directory's fp32 `model.onnx`, read and
 *   checked, when the loaded file is ORT format (the `mobile` variant, whose metadata and item vectors are
 *   the fp32 file's); else null
 * @property {Record<string, any> | null} entry the manifest's entry of the loaded file (null: not listed)
 * @property {Record<string, any> | null} manifest the directory's manifest when the loaded file is listed in it
 */

/**
 * A folder read over `fetch`. A 404 is "no such file"; other failures are ArtifactErrors with the URL.
 *
 * @param {URL} base ends with "/"
 * @param {typeof fetch} fetchImpl
 * @returns {Folder}
 */
export function urlFolder(base, fetchImpl) {
  return {
    name: base.href,
    async read(file, optional = false) {
      const url = new URL(file, base).href;
      let response;
      try {
        response = await fetchImpl(url);
      } catch (e) {
        if (optional) return null;
        throw new ArtifactError(
          `${url}: cannot fetch it (${e instanceof Error ? e.message : e}). Check the URL, that the server is ` +
            "up and that it lets this page read the file (CORS).",
        );
      }
      if (response.status === 404 || (optional && !response.ok)) return null;
      if (!response.ok) {
        throw new ArtifactError(`${url}: the server answered HTTP ${response.status}. Check the URL and its access rights.`);
      }
      return new Uint8Array(await response.arrayBuffer());
    },
  };
}

/**
 * Split a URL into the folder it is in and the model file, or (no `.onnx`/`.ort` at the end) treat the
 * whole URL as an artifact directory.
 *
 * @param {URL} url
 * @param {typeof fetch} fetchImpl
 * @returns {{ folder: Folder, file: string | null }}
 */
export function locateUrl(url, fetchImpl) {
  const last = url.pathname.slice(url.pathname.lastIndexOf("/") + 1);
  if (/\.(onnx|ort)$/.test(last)) {
    return { folder: urlFolder(new URL(".", url), fetchImpl), file: decodeURIComponent(last) };
  }
  const base = new URL(url.href);
  if (!base.pathname.endsWith("/")) base.pathname += "/";
  return { folder: urlFolder(base, fetchImpl), file: null };
}

/**
 * Read the model file of `variant` (from an artifact directory when `file` is null, else that file) and,
 * unless `sidecar` is false, its sidecar, both at once.
 *
 * @param {Folder} folder
 * @param {string | null} file
 * @param {string} variant
 * @param {boolean} sidecar look for the sidecar file
 * @returns {Promise<ModelFile>}
 */
export async function readModel(folder, file, variant, sidecar) {
  let expectedSha256 = null;
  /** @type {Record<string, any> | null | undefined} */
  let entry = null;
  /** @type {Record<string, any> | null} */
  let manifest = null;
  if (file === null) {
    manifest = await readManifest(folder, false);
    entry = /** @type {Record<string, any>} */ (manifest).variants[variant];
    if (!isObject(entry) || typeof entry.file !== "string") {
      const available = Object.keys(/** @type {Record<string, any>} */ (manifest).variants).sort();
      throw new ArtifactError(
        `${folder.name}: no ${JSON.stringify(variant)} variant in this artifact (it has ${JSON.stringify(available)}). ` +
          "Load one of those, or re-export with the option that writes it (e.g. --quantize int8).",
      );
    }
    file = entry.file;
    expectedSha256 = typeof entry.sha256 === "string" ? entry.sha256 : null;
  } else {
    manifest = await readManifest(folder, true);
    entry = manifest && Object.values(manifest.variants).find((e) => isObject(e) && e.file === file);
    expectedSha256 = entry && typeof entry.sha256 === "string" ? entry.sha256 : null;
  }
  const name = folder.name.endsWith("/") ? folder.name + file : `${folder.name}/${file}`;
  const ortFormat = /** @type {string} */ (file).endsWith(".ort");
  const [bytes, sidecarBytes, fp32] = await Promise.all([
    folder.read(/** @type {string} */ (file)),
    sidecar && !ortFormat ? folder.read(file + SIDECAR_SUFFIX, true) : null,
    ortFormat ? readFp32Model(folder, entry ? manifest : null, name) : null,
  ]);
  if (bytes === null) {
    throw new ArtifactError(
      expectedSha256 === null
        ? `${name}: no such model file. Check the path or URL (s4rec-export model.pt -o DIR writes an artifact).`
        : `${name}: listed in ${MANIFEST_NAME} but missing. Copy the whole artifact directory, or re-export it.`,
    );
  }
  return {
    bytes,
    name,
    expectedSha256,
    sidecar: sidecarBytes && parseSidecar(sidecarBytes, name + SIDECAR_SUFFIX),
    folder,
    prepacking: entry?.prepacking !== false,
    fp32,
    entry: entry ?? null,
    manifest: entry ? manifest : null,
  };
}

/**
 * The fp32 `model.onnx` of the directory of an ORT-format file (the `mobile` variant), read and checked
 * against the manifest: ORT format is a flatbuffer, not the ONNX protobuf this SDK reads its metadata from,
 * and the exporter gives it the fp32 file's metadata (docs/ARTIFACT.md), so they are read from there.
 *
 * @param {Folder} folder
 * @param {Record<string, any> | null} manifest the directory's manifest when it lists the .ort file
 * @param {string} name the .ort file's path or URL, for messages
 * @returns {Promise<{ bytes: Uint8Array, name: string }>}
 */
async function readFp32Model(folder, manifest, name) {
  const entry = manifest?.variants.fp32;
  if (!isObject(entry) || typeof entry.file !== "string" || typeof entry.sha256 !== "string") {
    throw new ArtifactError(
      `${name}: an ORT-format file (the "mobile" variant) on its own: its metadata are read from the fp32 ` +
        `model.onnx of its artifact directory, and no ${MANIFEST_NAME} next to it lists both. Load the ` +
        'artifact directory with variant "mobile", or an .onnx file.',
    );
  }
  const fp32Name = folder.name.endsWith("/") ? folder.name + entry.file : `${folder.name}/${entry.file}`;
  const bytes = await folder.read(entry.file);
  if (bytes === null) {
    throw new ArtifactError(`${fp32Name}: listed in ${MANIFEST_NAME} but missing. Copy the whole artifact directory.`);
  }
  await verifyChecksum({ bytes, name: fp32Name, expectedSha256: entry.sha256 });
  return { bytes, name: fp32Name };
}

/**
 * Read and check `s4rec.json`.
 *
 * @param {Folder} folder
 * @param {boolean} optional true: a missing manifest is null (a single model file)
 * @returns {Promise<{ variants: Record<string, any> } | null>}
 */
async function readManifest(folder, optional) {
  const place = folder.name.endsWith("/") ? folder.name : `${folder.name}/`;
  const path = place + MANIFEST_NAME;
  const bytes = await folder.read(MANIFEST_NAME, optional);
  if (bytes === null) {
    if (optional) return null;
    throw new ArtifactError(
      `${folder.name}: no ${MANIFEST_NAME} in this directory, so it is not an s4rec artifact. Pass the ` +
        "directory written by `s4rec-export model.pt -o DIR`, or a single .onnx file.",
    );
  }
  checkJsonSize(bytes, path, "manifest", MAX_MANIFEST_BYTES);
  const manifest = parseJson(utf8Decode(bytes), path, "manifest");
  if (!isObject(manifest) || manifest.format !== MANIFEST_FORMAT) {
    throw new ArtifactError(`${path}: not an s4rec manifest (no format="${MANIFEST_FORMAT}").`);
  }
  if (manifest.format_version !== MANIFEST_FORMAT_VERSION) {
    throw new ArtifactVersionError(
      `${path}: manifest format version ${JSON.stringify(manifest.format_version ?? null)}, this SDK reads ` +
        `${MANIFEST_FORMAT_VERSION}. Install the s4rec release that matches the exporter, or re-export.`,
    );
  }
  if (!isObject(manifest.variants)) {
    throw new ArtifactError(`${path}: manifest has no 'variants' table. Re-export the artifact.`);
  }
  return /** @type {{ variants: Record<string, any> }} */ (manifest);
}

/**
 * @param {Uint8Array} bytes
 * @param {string} name
 * @returns {Record<string, unknown>}
 */
export function parseSidecar(bytes, name) {
  checkJsonSize(bytes, name, "metadata sidecar", MAX_SIDECAR_BYTES);
  const value = parseJson(utf8Decode(bytes), name, "metadata sidecar");
  if (!isObject(value)) throw new ArtifactError(`${name}: the metadata sidecar is not a JSON object. Re-export the artifact.`);
  return value;
}

/**
 * Check the model file against the manifest's SHA-256 (nothing to check for a lone file or bytes).
 *
 * @param {{ bytes: Uint8Array, name: string, expectedSha256: string | null }} model
 */
export async function verifyChecksum(model) {
  if (model.expectedSha256 === null) return;
  const actual = await sha256Hex(model.bytes);
  if (actual !== model.expectedSha256) {
    throw new ChecksumError(
      `${model.name}: SHA-256 ${actual.slice(0, 12)}... does not match the manifest's ` +
        `${model.expectedSha256.slice(0, 12)}.... The file was changed or truncated after export; re-export ` +
        "the artifact or restore the file.",
    );
  }
}
