/**
 * UTF-8 decoding that also works where `TextDecoder` is missing (some React Native JavaScript engines).
 */

/** @type {{ lenient?: InstanceType<typeof TextDecoder>, fatal?: InstanceType<typeof TextDecoder> }} reused: decode() without `stream` keeps no state */
const decoders = {};

/**
 * Decode UTF-8 bytes to a string; invalid input becomes U+FFFD, as `TextDecoder` does by default.
 *
 * @param {Uint8Array} bytes
 * @returns {string}
 */
export function utf8Decode(bytes) {
  return decode(bytes, false);
}

/**
 * Decode UTF-8 bytes to a string; invalid input is a TypeError (`TextDecoder`'s `fatal` option).
 *
 * @param {Uint8Array} bytes
 * @returns {string}
 */
export function utf8DecodeStrict(bytes) {
  return decode(bytes, true);
}

/**
 * @param {Uint8Array} bytes
 * @param {boolean} fatal
 * @returns {string}
 */
function decode(bytes, fatal) {
  if (typeof TextDecoder !== "undefined") {
    const decoder = fatal
      ? (decoders.fatal ??= new TextDecoder("utf-8", { fatal: true }))
      : (decoders.lenient ??= new TextDecoder());
    return decoder.decode(bytes);
  }
  let out = "";
  for (let i = 0; i < bytes.length; ) {
    const byte = bytes[i];
    const extra = byte >= 0xf0 ? 3 : byte >= 0xe0 ? 2 : byte >= 0xc0 ? 1 : 0;
    let code = extra ? byte & (0x3f >> extra) : byte;
    let j = 1;
    for (; j <= extra && i + j < bytes.length && (bytes[i + j] & 0xc0) === 0x80; j++) {
      code = code * 64 + (bytes[i + j] & 0x3f);
    }
    const valid = (byte < 0x80 || extra) && j === extra + 1 && code <= 0x10ffff;
    if (!valid && fatal) throw new TypeError(`invalid UTF-8 at byte ${i}`);
    out += valid ? String.fromCodePoint(code) : "\ufffd";
    i += valid ? j : Math.max(1, j);
  }
  return out;
}
