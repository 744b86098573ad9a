/**
 * The sidecar files of a format 3 artifact (docs/ARTIFACT.md, "Format 3: large catalogues"): the item ids,
 * popular items, intent top items, the item tables the graphs read as ONNX external data, and the
 * encoder-only graph, each described by an entry of the metadata's `sidecars` table
 * (`{"file", "sha256", "bytes", "dtype", "shape"}`, plus `"encoding"` on the item ids).
 *
 * Every file is checked as the Python SDK checks it (`sdk/s4rec/sidecars.py`): present, of the recorded size,
 * of the recorded dtype and shape (`.npy` files), and its SHA-256 when it is at most {@link HASHED_ALWAYS_BYTES}
 * (larger ones, the item tables of big catalogues, with `verify: "full"`). A missing or changed file is an
 * {@link ArtifactError} (a {@link ChecksumError} for a SHA-256) naming the file and what to do.
 */

import { ArtifactError, ChecksumError } from "./errors.js";
import { parseJson } from "./json.js";
import { isObject } from "./metadata.js";
import { sha256Hex } from "./sha256.js";
import { utf8Decode, utf8DecodeStrict } from "./text.js";

// Files up to this size are hashed on every load; larger ones only with verify: "full" (the Python SDK's
// HASHED_ALWAYS_BYTES): hashing a 256 MB table costs about a second, and its size is still checked.
export const HASHED_ALWAYS_BYTES = 64 * 1024 * 1024;
export const VERIFY_MODES = /** @type {const} */ (["fast", "full"]);
/** @typedef {typeof VERIFY_MODES[number]} VerifyMode */

const NPY_MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 0x01, 0x00]; // "\x93NUMPY" and version 1.0
// The .npy dtypes format 3 writes (little-endian, or byte-order-free for one byte): numpy's descr -> name.
const NPY_TYPES = /** @type {Record<string, { name: string, size: number }>} */ ({
  "<i8": { name: "int64", size: 8 },
  "<f4": { name: "float32", size: 4 },
  "<i4": { name: "int32", size: 4 },
  "|u1": { name: "uint8", size: 1 },
});

/**
 * A parsed `.npy` file: its dtype name, shape and where its data starts.
 *
 * @typedef {object} NpyArray
 * @property {string} dtype "int64", "int32", "float32" or "uint8"
 * @property {number[]} shape
 * @property {Uint8Array} data the data bytes (C order, little-endian)
 */

/**
 * Parse a `.npy` file of format version 1.0: the magic, a little-endian uint16 header length, then the
 * ASCII header dict `{'descr': ..., 'fortran_order': False, 'shape': (...), }` padded with spaces.
 *
 * @param {Uint8Array} bytes
 * @param {string} name the file, for messages
 * @returns {NpyArray}
 */
export function parseNpy(bytes, name) {
  const { dtype, shape, offset } = parseNpyHeader(bytes, bytes.length, name);
  return { dtype, shape, data: bytes.subarray(offset) };
}

/**
 * The header of a `.npy` file of `size` bytes from its first bytes `head` (the whole header: at most
 * {@link NPY_HEADER_MAX} bytes): dtype, shape and the offset of its data, which must fill the rest of the file.
 *
 * @param {Uint8Array} head
 * @param {number} size
 * @param {string} name the file, for messages
 * @returns {{ dtype: string, shape: number[], offset: number }}
 */
export function parseNpyHeader(head, size, name) {
  const bad = (/** @type {string} */ why) =>
    new ArtifactError(`${name}: not a readable .npy file (${why}). Re-export the artifact.`);
  if (head.length < 10 || NPY_MAGIC.some((b, i) => head[i] !== b)) {
    throw bad("expected the magic \\x93NUMPY and format version 1.0");
  }
  const headerEnd = 10 + head[8] + head[9] * 256;
  if (headerEnd > size) throw bad(`a header of ${headerEnd - 10} bytes in a file of ${size}`);
  const header = utf8Decode(head.subarray(10, headerEnd));
  const descr = /'descr':\s*'([^']*)'/.exec(header)?.[1];
  const fortran = /'fortran_order':\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1];
  if (descr === undefined || fortran === undefined || shapeText === undefined) {
    throw bad(`header ${JSON.stringify(header.trim().slice(0, 120))} lacks descr, fortran_order or shape`);
  }
  const type = NPY_TYPES[descr];
  if (type === undefined) throw bad(`dtype ${descr}, expected one of ${Object.keys(NPY_TYPES).join(", ")}`);
  if (fortran !== "False") throw bad("Fortran order, expected C order");
  const dims = shapeText.split(",").map((d) => d.trim()).filter(Boolean);
  if (!dims.every((d) => /^\d+$/.test(d))) throw bad(`shape (${shapeText})`);
  const shape = dims.map(Number);
  const expected = shape.reduce((n, d) => n * d, 1) * type.size;
  if (size - headerEnd !== expected) {
    throw bad(`${size - headerEnd} data bytes for ${type.name}[${shape.join(", ")}], expected ${expected}`);
  }
  return { dtype: type.name, shape, offset: headerEnd };
}

/** The most bytes a `.npy` 1.0 header takes: the magic, the length, a header of up to 65,535 bytes. */
export const NPY_HEADER_MAX = 10 + 65535;

/**
 * The values of an int64 `.npy` array as JavaScript numbers (item indices and ids within 2^53).
 *
 * @param {NpyArray} array
 * @returns {number[] | null} null when a value is beyond 2^53
 */
function int64Numbers(array) {
  const { data } = array;
  // A copy: the data of a .npy file need not be 8-byte aligned in its buffer.
  const values = new BigInt64Array(data.slice().buffer);
  const out = new Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const value = Number(values[i]);
    if (!Number.isSafeInteger(value)) return null;
    out[i] = value;
  }
  return out;
}

/**
 * The `sidecars` table of a format 3 model's metadata, read from the model's folder with every check.
 * Each file is read once, however many times it is asked for (the item table serves two graphs).
 */
export class Sidecars {
  /** @type {Map<string, Promise<Uint8Array>>} */
  #read = new Map();
  /** @type {Map<string, Promise<string>>} */
  #checkedOnDisk = new Map();

  /**
   * @param {import("./sources.js").Folder} folder the artifact directory (or URL base) of the model file
   * @param {unknown} entries the metadata's `sidecars` table
   * @param {string} modelName the model file's path or URL, for messages
   * @param {VerifyMode} verify "full": also hash files above HASHED_ALWAYS_BYTES
   */
  constructor(folder, entries, modelName, verify) {
    if (!isObject(entries) || !Object.values(entries).every(isObject)) {
      throw new ArtifactError(`${modelName}: invalid s4rec metadata: sidecars must be a table. Re-export it.`);
    }
    this.folder = folder;
    /** @type {Record<string, Record<string, any>>} */
    this.entries = entries;
    this.modelName = modelName;
    this.modelFile = modelName.slice(Math.max(modelName.lastIndexOf("/"), modelName.lastIndexOf("\\")) + 1);
    this.verify = verify;
  }

  /** @param {string} name */
  has(name) {
    return name in this.entries;
  }

  /**
   * The sidecar of `file` (a file name the graph refers to), or undefined.
   *
   * @param {string} file
   * @returns {string | undefined} its sidecar name
   */
  nameOf(file) {
    return Object.keys(this.entries).find((name) => this.entries[name].file === file);
  }

  /**
   * The path or URL of sidecar `name`'s file, for messages.
   *
   * @param {string} name
   */
  where(name) {
    const place = this.folder.name.endsWith("/") ? this.folder.name : `${this.folder.name}/`;
    return place + String(this.entries[name]?.file);
  }

  /**
   * The checked bytes of sidecar `name`: present, of the recorded size and (when hashed) SHA-256.
   *
   * @param {string} name
   * @returns {Promise<Uint8Array>}
   */
  bytes(name) {
    let read = this.#read.get(name);
    if (read === undefined) {
      read = this.#readChecked(name);
      this.#read.set(name, read);
    }
    return read;
  }

  /**
   * Whether sidecar files can be checked where they lie, without reading them into memory (Node's folders).
   */
  get onDisk() {
    return this.folder.local !== undefined;
  }

  /**
   * Check sidecar `name` where it lies, as {@link Sidecars.bytes} checks its bytes (present, of the recorded size,
   * `.npy` header, dtype and shape, SHA-256 where due, streamed), without holding the file in memory; for the item
   * tables ONNX Runtime then reads from the directory itself. Only for folders with `local` ({@link onDisk}).
   *
   * @param {string} name
   * @returns {Promise<string>} the directory's resolved path, which holds the file
   */
  checkOnDisk(name) {
    let checked = this.#checkedOnDisk.get(name);
    if (checked === undefined) {
      checked = this.#checkOnDisk(name);
      this.#checkedOnDisk.set(name, checked);
    }
    return checked;
  }

  /**
   * @param {string} name
   * @returns {Promise<string>}
   */
  async #checkOnDisk(name) {
    const entry = this.#entry(name);
    const path = this.where(name);
    const local = /** @type {NonNullable<import("./sources.js").Folder["local"]>} */ (this.folder.local);
    const file = await local(entry.file);
    if (file === null) throw this.#missing(name, path);
    this.#checkSize(file.size, entry, path);
    if (entry.dtype !== undefined) {
      const { dtype, shape } = parseNpyHeader(await file.head(NPY_HEADER_MAX), file.size, path);
      this.#checkArray(name, dtype, shape);
    }
    if (file.size <= HASHED_ALWAYS_BYTES || this.verify === "full") this.#checkHash(await file.sha256(), entry, path);
    return file.directory;
  }

  /**
   * The metadata's entry of sidecar `name`, its file name checked.
   *
   * @param {string} name
   */
  #entry(name) {
    const entry = this.entries[name];
    if (entry === undefined) {
      throw new ArtifactError(
        `${this.modelName}: the metadata lists no "${name}" sidecar. Re-export the artifact with a current ` +
          "s4rec-export.",
      );
    }
    const file = entry.file;
    if (typeof file !== "string" || /[/\\]/.test(file) || ["", ".", ".."].includes(file)) {
      throw new ArtifactError(`${this.modelName}: sidecar "${name}" has an invalid file name ${JSON.stringify(file)}. Re-export.`);
    }
    return entry;
  }

  /**
   * @param {string} name
   * @returns {Promise<Uint8Array>}
   */
  async #readChecked(name) {
    const entry = this.#entry(name);
    const path = this.where(name);
    const bytes = await this.folder.read(entry.file);
    if (bytes === null) throw this.#missing(name, path);
    this.#checkSize(bytes.length, entry, path);
    if (bytes.length <= HASHED_ALWAYS_BYTES || this.verify === "full") this.#checkHash(await sha256Hex(bytes), entry, path);
    return bytes;
  }

  /**
   * @param {string} name
   * @param {string} path
   */
  #missing(name, path) {
    return new ArtifactError(
      `${path}: sidecar file "${name}" of ${this.modelFile} is missing. Copy the whole artifact directory ` +
        "(every file listed in its s4rec.json), or re-export it.",
    );
  }

  /**
   * @param {number} size
   * @param {Record<string, any>} entry
   * @param {string} path
   */
  #checkSize(size, entry, path) {
    if (size !== entry.bytes) {
      throw new ArtifactError(
        `${path}: ${size.toLocaleString("en-US")} bytes, the metadata of ${this.modelFile} records ` +
          `${JSON.stringify(entry.bytes ?? null)}. The file is truncated or was replaced; restore it or re-export the artifact.`,
      );
    }
  }

  /**
   * @param {string} actual
   * @param {Record<string, any>} entry
   * @param {string} path
   */
  #checkHash(actual, entry, path) {
    if (actual !== entry.sha256) {
      throw new ChecksumError(
        `${path}: SHA-256 ${actual.slice(0, 12)}... does not match the ${String(entry.sha256).slice(0, 12)}... ` +
          `recorded in ${this.modelFile}. The file was changed after export; restore it or re-export the artifact.`,
      );
    }
  }

  /**
   * @param {string} name
   * @param {string} dtype
   * @param {number[]} shape
   */
  #checkArray(name, dtype, shape) {
    const entry = this.entries[name];
    if (dtype !== entry.dtype || JSON.stringify(shape) !== JSON.stringify(entry.shape)) {
      throw new ArtifactError(
        `${this.where(name)}: ${dtype}[${shape.join(", ")}], the metadata records ` +
          `${entry.dtype}[${Array.isArray(entry.shape) ? entry.shape.join(", ") : entry.shape}]. Re-export the artifact.`,
      );
    }
  }

  /**
   * Sidecar `name` as a parsed `.npy` array of the recorded dtype and shape.
   *
   * @param {string} name
   * @returns {Promise<NpyArray>}
   */
  async array(name) {
    const array = parseNpy(await this.bytes(name), this.where(name));
    this.#checkArray(name, array.dtype, array.shape);
    return array;
  }

  /**
   * An int64 sidecar as numbers.
   *
   * @param {string} name
   * @param {number} ndim the rank it must have
   * @returns {Promise<{ values: number[], shape: number[] }>}
   */
  async integers(name, ndim) {
    const array = await this.array(name);
    if (array.dtype !== "int64" || array.shape.length !== ndim) {
      throw new ArtifactError(
        `${this.where(name)}: ${name} must be int64 of rank ${ndim}, got ${array.dtype}[${array.shape.join(", ")}]. Re-export.`,
      );
    }
    const values = int64Numbers(array);
    if (values === null) {
      throw new ArtifactError(
        `${this.where(name)}: a value is beyond 2^53, the largest integer a JavaScript number holds exactly ` +
          (name === "item_ids" ? "(give such ids to s4rec-train as strings). " : "") +
          "Re-export the artifact.",
      );
    }
    return { values, shape: array.shape };
  }

  /**
   * An int32 sidecar of rank 1 (`item_intents`), copied into an aligned Int32Array.
   *
   * @param {string} name
   * @returns {Promise<Int32Array>}
   */
  async int32s(name) {
    const array = await this.array(name);
    if (array.dtype !== "int32" || array.shape.length !== 1) {
      throw new ArtifactError(
        `${this.where(name)}: ${name} must be int32 of rank 1, got ${array.dtype}[${array.shape.join(", ")}]. Re-export.`,
      );
    }
    return new Int32Array(new Uint8Array(array.data).buffer); // a copy, aligned
  }

  /**
   * The item ids (of the encodings `npy`, `utf-8` and `json`), as many as `numItems`.
   *
   * @param {number} numItems
   * @returns {Promise<Array<number | string>>}
   */
  async itemIds(numItems) {
    const encoding = this.entries.item_ids?.encoding;
    /** @type {Array<number | string>} */
    let ids;
    if (encoding === "npy") {
      ids = (await this.integers("item_ids", 1)).values;
    } else if (encoding === "utf-8") {
      const [blob, offsets] = await Promise.all([this.bytes("item_ids"), this.integers("item_id_offsets", 1)]);
      ids = splitUtf8(blob, offsets.values, numItems, this.where("item_id_offsets"), this.where("item_ids"));
    } else if (encoding === "json") {
      const bytes = await this.bytes("item_ids"); // of its recorded size
      let text;
      try {
        text = utf8DecodeStrict(bytes);
      } catch (e) {
        throw new ArtifactError(`${this.where("item_ids")}: not UTF-8 (${e instanceof Error ? e.message : e}). Re-export the artifact.`);
      }
      const parsed = parseJson(text, this.where("item_ids"), "item ids");
      if (!Array.isArray(parsed) || !parsed.every((i) => typeof i === "string" || Number.isInteger(i))) {
        throw new ArtifactError(`${this.where("item_ids")}: item ids must be a list of ints and strings. Re-export.`);
      }
      ids = parsed;
    } else {
      throw new ArtifactError(
        `${this.modelName}: item_ids sidecar encoding ${JSON.stringify(encoding ?? null)} is not one this SDK ` +
          "reads (npy, utf-8, json). Install the s4rec JavaScript package that matches the exporter, or re-export.",
      );
    }
    if (ids.length !== numItems) {
      throw new ArtifactError(
        `${this.where("item_ids")}: ${ids.length.toLocaleString("en-US")} item ids for num_items ` +
          `${numItems.toLocaleString("en-US")}. Re-export the artifact.`,
      );
    }
    return ids;
  }
}

/**
 * The string ids of a UTF-8 blob and its N + 1 offsets (id i is `blob[offsets[i]:offsets[i + 1]]`).
 *
 * @param {Uint8Array} blob
 * @param {number[]} offsets
 * @param {number} numItems
 * @param {string} offsetsName
 * @param {string} blobName
 * @returns {string[]}
 */
function splitUtf8(blob, offsets, numItems, offsetsName, blobName) {
  if (offsets.length !== numItems + 1 || offsets[0] !== 0 || offsets[offsets.length - 1] !== blob.length) {
    throw new ArtifactError(`${offsetsName}: offsets do not fit the id blob. Re-export.`);
  }
  for (let i = 1; i < offsets.length; i++) {
    if (offsets[i] < offsets[i - 1]) throw new ArtifactError(`${offsetsName}: offsets must not decrease. Re-export.`);
  }
  // Byte offsets are character offsets in ASCII text: one decode for the whole blob instead of one per id.
  const ascii = blob.every((b) => b < 0x80);
  const text = ascii ? utf8Decode(blob) : "";
  const ids = new Array(numItems);
  try {
    for (let i = 0; i < numItems; i++) {
      ids[i] = ascii ? text.slice(offsets[i], offsets[i + 1]) : utf8DecodeStrict(blob.subarray(offsets[i], offsets[i + 1]));
    }
  } catch (e) {
    throw new ArtifactError(`${blobName}: not UTF-8 (${e instanceof Error ? e.message : e}). Re-export the artifact.`);
  }
  return ids;
}
