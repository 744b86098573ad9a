/**
 * s4rec for Node: the {@link Recommender} on onnxruntime-node, unless `options.ort` says otherwise, reading
 * artifacts from paths and `file:` URLs as well as over http(s).
 */

import { createHash } from "node:crypto";
import { open, readFile, realpath, stat } from "node:fs/promises";
import { basename, dirname, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";

import { ArtifactError, S4RecError } from "./errors.js";
import { Recommender as CoreRecommender } from "./recommender.js";

export * from "./index.js";

/** @typedef {import("./sources.js").Folder} Folder */

/** The {@link CoreRecommender} with onnxruntime-node as its default runtime, and file paths as sources. */
export class Recommender extends CoreRecommender {
  static sessionDefaults = { executionProviders: ["cpu"] };

  /** @returns {Promise<import("./recommender.js").Runtime>} */
  static async runtime() {
    try {
      return await import("onnxruntime-node");
    } catch (e) {
      throw new S4RecError(
        `onnxruntime-node could not be imported (${e instanceof Error ? e.message : e}). Install it with ` +
          "ONNXRUNTIME_NODE_INSTALL=skip npm install onnxruntime-node (its CPU binaries are in the package; " +
          "the variable skips a download of CUDA ones), or pass Recommender.load(source, { ort }).",
      );
    }
  }

  /**
   * A path (or a `file:` URL) is read from disk; anything else with a scheme (http, https) over fetch.
   *
   * @param {string | URL} location
   * @param {typeof fetch | undefined} fetchImpl
   */
  static async locate(location, fetchImpl) {
    const scheme = /^([a-z][a-z\d+.-]+):/i.exec(String(location))?.[1].toLowerCase(); // 2+ letters: not C:\
    if (scheme === "file") return locatePath(fileURLToPath(location));
    if (scheme !== undefined) return super.locate(location, fetchImpl);
    return locatePath(/** @type {string} */ (location));
  }
}

/**
 * @param {string} path an artifact directory or a model file
 * @returns {Promise<{ folder: Folder, file: string | null }>}
 */
async function locatePath(path) {
  const full = resolve(path);
  const info = await stat(full).catch(() => null);
  if (info === null) {
    throw new ArtifactError(`${path}: no such artifact. Create one with \`s4rec-export model.pt -o ${path}\`.`);
  }
  if (info.isDirectory()) return { folder: fileFolder(full), file: null };
  if (!/\.(onnx|ort)$/.test(full)) throw new ArtifactError(`${path}: expected an artifact directory, a .onnx or a .ort file.`);
  return { folder: fileFolder(dirname(full)), file: basename(full) };
}

/**
 * The files of an artifact directory. Every name resolves (links followed) inside the directory's own resolved
 * path, as in the Python SDK (`s4rec.untrusted.artifact_file`): the directory itself may be a link, and a link
 * inside it that stays inside loads, but a file that resolves elsewhere (a link out, a `../` name) is refused.
 * `local` gives a file's size, first bytes and SHA-256 (streamed) without reading it into memory: format 3's item
 * tables are checked so and then read by ONNX Runtime itself, from the directory (`js/src/session.js`).
 *
 * @param {string} directory
 * @returns {Folder}
 */
function fileFolder(directory) {
  /** @type {Promise<string> | null} */
  let root = null;
  /**
   * The file's resolved path, checked to lie inside the directory; null when it does not exist.
   *
   * @param {string} file
   * @param {boolean} optional
   */
  async function inside(file, optional) {
    const path = resolve(directory, file);
    let real;
    try {
      root ??= realpath(directory);
      real = await realpath(path);
    } catch (e) {
      const code = /** @type {NodeJS.ErrnoException} */ (e).code;
      if (code === "ENOENT" || optional) return null;
      throw new ArtifactError(`${path}: cannot read it (${code ?? e}). Check the file and its permissions.`);
    }
    const top = await root;
    if (!real.startsWith(top + sep)) {
      throw new ArtifactError(
        `${path}: resolves to ${real}, outside the artifact directory ${top}; only files inside it are read. ` +
          "Copy the file into the directory (cp -L) or re-export the artifact.",
      );
    }
    return { path, real, top };
  }
  /**
   * @param {string} path
   * @param {() => Promise<any>} action
   */
  async function reading(path, action) {
    try {
      return await action();
    } catch (e) {
      const code = /** @type {NodeJS.ErrnoException} */ (e).code;
      throw new ArtifactError(`${path}: cannot read it (${code ?? e}). Check the file and its permissions.`);
    }
  }
  return {
    name: directory,
    async read(file, optional = false) {
      const found = await inside(file, optional);
      if (found === null) return null;
      try {
        // A view of the Buffer, not a copy of it (a large file's Buffer has an ArrayBuffer of its own).
        const bytes = await readFile(found.real);
        return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      } catch (e) {
        const code = /** @type {NodeJS.ErrnoException} */ (e).code;
        if (code === "ENOENT" || optional) return null;
        throw new ArtifactError(`${found.path}: cannot read it (${code ?? e}). Check the file and its permissions.`);
      }
    },
    async local(file) {
      const found = await inside(file, false);
      if (found === null) return null;
      const { path, real, top } = found;
      const { size } = await reading(path, () => stat(real));
      return {
        directory: top,
        size,
        /** @param {number} length */
        head: (length) =>
          reading(path, async () => {
            const handle = await open(real);
            try {
              const buffer = new Uint8Array(Math.min(length, size));
              const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0);
              return buffer.subarray(0, bytesRead);
            } finally {
              await handle.close();
            }
          }),
        sha256: () =>
          reading(path, async () => {
            // One 1 MiB buffer, reused: a read stream's 64 KiB chunks outlived the hash (14 MB more RSS for a 25.6
            // MB table, measured).
            const hash = createHash("sha256");
            const handle = await open(real);
            try {
              const buffer = new Uint8Array(1 << 20);
              for (let read; (read = (await handle.read(buffer, 0, buffer.length, null)).bytesRead) > 0; ) {
                hash.update(buffer.subarray(0, read));
              }
            } finally {
              await handle.close();
            }
            return hash.digest("hex");
          }),
      };
    },
  };
}
