/**
 * Reading metadata_props from model bytes, and the UTF-8 decoding it uses (also without TextDecoder).
 */

import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { test } from "node:test";

import { ArtifactError } from "../src/errors.js";
import { readMetadataProps } from "../src/protobuf.js";
import { utf8Decode } from "../src/text.js";
import { identityModel, KNOWN_MODEL, withProp } from "./helpers.js";

test("metadata_props of the committed model, past its graph", async () => {
  const props = readMetadataProps(new Uint8Array(await readFile(KNOWN_MODEL)), "model.onnx");
  assert.deepEqual(Object.keys(props).sort(), ["s4rec.format", "s4rec.format_version", "s4rec.metadata"]);
  assert.equal(props["s4rec.format"], "s4rec-onnx");
  assert.equal(JSON.parse(props["s4rec.metadata"]).num_items, 12);
});

test("a repeated key keeps its last value; non-ASCII keys and values are decoded", () => {
  const model = withProp(identityModel({ a: "1", "日本": "café 😀" }), "a", "2");
  assert.deepEqual(readMetadataProps(model, "m"), { a: "2", "日本": "café 😀" });
});

test("truncated bytes are not an ONNX model", () => {
  const model = identityModel({ key: "value" });
  for (const end of [1, 5, model.length - 1]) {
    assert.throws(() => readMetadataProps(model.subarray(0, end), "cut.onnx"), (/** @type {any} */ e) => {
      assert.ok(e instanceof ArtifactError);
      assert.match(e.message, /^cut\.onnx: not an ONNX model \(its bytes are not a valid protobuf message at offset \d+\)/);
      return true;
    });
  }
});

test("UTF-8 decoding without TextDecoder (React Native engines) matches TextDecoder", () => {
  const samples = ["plain", "café", "日本", "😀 and \u2028", ""].map((s) => new TextEncoder().encode(s));
  samples.push(Uint8Array.of(0x61, 0xff, 0x62), Uint8Array.of(0xe6, 0x97), Uint8Array.of(0x80));
  const want = samples.map((b) => new TextDecoder().decode(b));
  const saved = globalThis.TextDecoder;
  try {
    // @ts-ignore: simulating an engine without it
    delete globalThis.TextDecoder;
    assert.deepEqual(samples.map(utf8Decode), want);
  } finally {
    globalThis.TextDecoder = saved;
  }
});
