/**
 * The SDK's errors: one small hierarchy under {@link S4RecError}, the same classes as the Python SDK's.
 *
 * Messages follow "what is wrong: the values. what to do." and name the file or URL when there is one.
 * Bad arguments raise the built-in errors instead, as Python's TypeError / ValueError: a `TypeError` for a
 * wrong type (a string instead of an array, an id that is neither an integer nor a string), a `RangeError`
 * for a value outside what is allowed (`k` beyond `top_k`, an unknown policy name).
 */

/** Base class of every error the s4rec SDK raises on purpose. */
export class S4RecError extends Error {
  /** @param {string} message */
  constructor(message) {
    super(message);
    this.name = new.target.name;
  }
}

/** An artifact that is missing, incomplete or malformed. */
export class ArtifactError extends S4RecError {}

/** An artifact written for another format version than this SDK reads, or that the runtime cannot run. */
export class ArtifactVersionError extends ArtifactError {}

/** A model file or the item vocabulary does not match the checksum recorded at export. */
export class ChecksumError extends ArtifactError {}

/** A history holds item ids the model does not know, and `unknown: "error"` was asked for. */
export class UnknownItemError extends S4RecError {
  /**
   * @param {string} message
   * @param {ReadonlyArray<number | string | bigint>} items the unknown ids, in history order
   */
  constructor(message, items) {
    super(message);
    /** @type {ReadonlyArray<number | string | bigint>} */
    this.items = items;
  }
}
