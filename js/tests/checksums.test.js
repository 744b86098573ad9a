/**
 * The two checksums of the artifact contract, byte for byte as Python computes them: the item vocabulary's
 * (Python's json.dumps with ensure_ascii escapes, including non-ASCII ids) and SHA-256 itself (WebCrypto and
 * the plain JavaScript fallback for engines without it).
 */

import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { test } from "node:test";

import { itemIdsChecksum, pythonJsonList } from "../src/pyjson.js";
import { sha256Hex, sha256HexSync } from "../src/sha256.js";

// Made with: ids = [...]; text = json.dumps(ids, separators=(",", ":")); hashlib.sha256(text.encode()).hexdigest()
const IDS = ["café", "日本", "😀", 'say "hi"', "back\\slash", "tab\t", "line\n", "\x00\x1f\x7f\x80", "/slash", "\u2028", "", 5, -3, 2 ** 53 - 1];
const PYTHON_TEXT =
  '["caf\\u00e9","\\u65e5\\u672c","\\ud83d\\ude00","say \\"hi\\"","back\\\\slash","tab\\t","line\\n",' +
  '"\\u0000\\u001f\\u007f\\u0080","/slash","\\u2028","",5,-3,9007199254740991]';
const PYTHON_SHA256 = "76be6f3793c2e696dfc57bf02ff3667d47c0bd34b84b65198ae370ad5513354b";

test("item ids are written as Python's json.dumps writes them (ensure_ascii, compact)", async () => {
  assert.equal(pythonJsonList(IDS), PYTHON_TEXT);
  assert.notEqual(JSON.stringify(IDS), PYTHON_TEXT); // why the SDK cannot use JSON.stringify
  assert.equal(await itemIdsChecksum(IDS), PYTHON_SHA256);
  assert.equal(pythonJsonList([]), "[]");
});

test("SHA-256 (WebCrypto and plain JavaScript) equals node:crypto across block boundaries", async () => {
  for (const length of [0, 1, 55, 56, 63, 64, 65, 119, 120, 127, 128, 1000, 65537]) {
    const bytes = new Uint8Array(randomBytes(length));
    const want = createHash("sha256").update(bytes).digest("hex");
    assert.equal(sha256HexSync(bytes), want, `plain JavaScript, ${length} bytes`);
    assert.equal(await sha256Hex(bytes), want, `WebCrypto, ${length} bytes`);
  }
  const view = new Uint8Array(randomBytes(300)).subarray(7, 250); // a view with an offset into its buffer
  assert.equal(sha256HexSync(view), createHash("sha256").update(view).digest("hex"));
});
