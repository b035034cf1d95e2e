/**
 * Builds small ONNX models in TypeScript, so each output decoder and the model loader can be tested end to end through
 * onnxruntime-node without Python, PyTorch or a committed binary fixture.
 *
 *   const bytes = new OnnxModelBuilder('mean-map')
 *     .input('input', 'float32', ['N', 3, 32, 32])
 *     .output('anomaly_map', 'float32', ['N', 1, 32, 32])
 *     .node('ReduceMean', ['input'], ['anomaly_map'], { axes: [1], keepdims: 1 })
 *     .toBytes();
 *
 * `writeTestModel` then drops the bytes and a manifest into a models directory, as an integrator would.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runInThisContext } from 'node:vm';
import protobuf from 'protobufjs';
import type { z } from 'zod';
import { ModelManifest } from '../../infra/vision/contracts';
import { ONNX_PROTO_SUBSET } from './onnx-proto-subset';

// ---------------------------------------------------------------------------------------------------------------
// onnxruntime under jest. jest runs each test file in its own vm context, whose typed-array constructors differ from
// the ones onnxruntime-node's native binding creates its outputs with; onnxruntime-common then refuses every output
// ("A float32 tensor's data must be type of function Float32Array()", jestjs/jest#2549). Sharing the process's
// constructors with the test context fixes that. It must happen before onnxruntime-common is first loaded in the test
// file (it captures the constructors at load), so a test that runs onnxruntime imports this module first.

const TYPED_ARRAYS = [
  'Float32Array',
  'Float64Array',
  'Int8Array',
  'Uint8Array',
  'Uint8ClampedArray',
  'Int16Array',
  'Uint16Array',
  'Int32Array',
  'Uint32Array',
  'BigInt64Array',
  'BigUint64Array',
] as const;

/** Makes the test context's typed arrays the process's own; a no-op outside jest. Runs when this module is imported. */
export function shareProcessTypedArrays(): void {
  const context = globalThis as unknown as Record<string, unknown>;
  for (const name of TYPED_ARRAYS) {
    const processOwn: unknown = runInThisContext(name);
    if (context[name] !== processOwn) context[name] = processOwn;
  }
}
shareProcessTypedArrays();

// ---------------------------------------------------------------------------------------------------------------

/** Operator set 17 (ONNX 1.12): ReduceMean/ReduceMax still take `axes` as an attribute there (an input from 18). */
export const TEST_OPSET = 17;
/** The IR version that goes with opset 17 (onnx/docs/Versioning.md). */
const IR_VERSION = 8;

const root = protobuf.parse(ONNX_PROTO_SUBSET, { keepCase: true }).root;
const ModelProto = root.lookupType('onnx.ModelProto');

/** TensorProto.DataType values (onnx.proto). */
const DATA_TYPE = { float32: 1, uint8: 2, int32: 6, int64: 7, bool: 9 } as const;
export type ElemType = keyof typeof DATA_TYPE;

/** A dimension: a fixed size, or a symbolic name such as 'N' for a dynamic batch. */
export type Dim = number | string;

/** AttributeProto.AttributeType values (onnx.proto). */
const ATTR = { FLOAT: 1, INT: 2, STRING: 3, TENSOR: 4, FLOATS: 6, INTS: 7 } as const;

interface TensorValue {
  elemType: ElemType;
  dims: number[];
  data: ArrayLike<number> | ArrayLike<bigint>;
}

/**
 * An attribute value. Integers become INT, other numbers FLOAT, integer arrays INTS, other arrays FLOATS; use
 * `attr.float(1)` / `attr.floats([1, 2])` where a float attribute happens to hold a whole number.
 */
export type AttrValue = number | number[] | string | { float: number } | { floats: number[] } | { tensor: TensorValue };

export const attr = {
  float: (value: number): AttrValue => ({ float: value }),
  floats: (values: number[]): AttrValue => ({ floats: values }),
  tensor: (elemType: ElemType, dims: number[], data: ArrayLike<number>): AttrValue => ({
    tensor: { elemType, dims, data },
  }),
};

interface ValueInfo {
  name: string;
  elemType: ElemType;
  shape: Dim[];
}

interface NodeSpec {
  opType: string;
  inputs: string[];
  outputs: string[];
  attributes: Record<string, AttrValue>;
}

export class OnnxModelBuilder {
  private readonly inputs: ValueInfo[] = [];
  private readonly outputs: ValueInfo[] = [];
  private readonly initializers: (TensorValue & { name: string })[] = [];
  private readonly nodes: NodeSpec[] = [];

  constructor(private readonly graphName: string) {}

  input(name: string, elemType: ElemType, shape: Dim[]): this {
    this.inputs.push({ name, elemType, shape });
    return this;
  }

  output(name: string, elemType: ElemType, shape: Dim[]): this {
    this.outputs.push({ name, elemType, shape });
    return this;
  }

  /** A constant tensor; `data` is row-major and must hold exactly the product of `dims` elements. */
  initializer(name: string, elemType: ElemType, dims: number[], data: ArrayLike<number>): this {
    const expected = dims.reduce((a, b) => a * b, 1);
    if (data.length !== expected) {
      throw new Error(`initializer ${name}: ${data.length} values for dims [${dims.join(', ')}] (${expected})`);
    }
    this.initializers.push({ name, elemType, dims, data });
    return this;
  }

  node(opType: string, inputs: string[], outputs: string[], attributes: Record<string, AttrValue> = {}): this {
    this.nodes.push({ opType, inputs, outputs, attributes });
    return this;
  }

  toBytes(): Uint8Array {
    const model = {
      ir_version: IR_VERSION,
      producer_name: 'holdfast-test-onnx-builder',
      opset_import: [{ domain: '', version: TEST_OPSET }],
      graph: {
        name: this.graphName,
        node: this.nodes.map((n, i) => ({
          name: `${n.opType.toLowerCase()}_${i}`,
          op_type: n.opType,
          input: n.inputs,
          output: n.outputs,
          attribute: Object.entries(n.attributes).map(([name, value]) => attributeProto(name, value)),
        })),
        initializer: this.initializers.map((t) => tensorProto(t.name, t)),
        input: this.inputs.map(valueInfoProto),
        output: this.outputs.map(valueInfoProto),
      },
    };
    const problem = ModelProto.verify(model);
    if (problem) throw new Error(`onnx-builder produced an invalid ModelProto: ${problem}`);
    return ModelProto.encode(ModelProto.fromObject(model)).finish();
  }
}

function valueInfoProto(v: ValueInfo): object {
  return {
    name: v.name,
    type: {
      tensor_type: {
        elem_type: DATA_TYPE[v.elemType],
        shape: { dim: v.shape.map((d) => (typeof d === 'number' ? { dim_value: d } : { dim_param: d })) },
      },
    },
  };
}

function tensorProto(name: string, t: TensorValue): object {
  return { name, dims: t.dims, data_type: DATA_TYPE[t.elemType], raw_data: rawData(t) };
}

/** raw_data: fixed-width little-endian elements (onnx.proto, TensorProto.raw_data). */
function rawData(t: TensorValue): Uint8Array {
  const n = t.data.length;
  switch (t.elemType) {
    case 'float32':
      return bytesOf(Float32Array.from(t.data as ArrayLike<number>));
    case 'int32':
      return bytesOf(Int32Array.from(t.data as ArrayLike<number>));
    case 'int64': {
      const out = new BigInt64Array(n);
      for (let i = 0; i < n; i++) out[i] = BigInt(t.data[i] as number | bigint);
      return bytesOf(out);
    }
    case 'uint8':
    case 'bool':
      return Uint8Array.from(t.data as ArrayLike<number>, (v) => (t.elemType === 'bool' ? (v ? 1 : 0) : v));
  }
}

// Node runs on little-endian hosts only (x64, arm64), so a typed array's bytes are already in ONNX's order.
function bytesOf(view: ArrayBufferView): Uint8Array {
  return new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
}

function attributeProto(name: string, value: AttrValue): object {
  if (typeof value === 'string') return { name, type: ATTR.STRING, s: Buffer.from(value, 'utf8') };
  if (typeof value === 'number') {
    return Number.isInteger(value) ? { name, type: ATTR.INT, i: value } : { name, type: ATTR.FLOAT, f: value };
  }
  if (Array.isArray(value)) {
    return value.every(Number.isInteger)
      ? { name, type: ATTR.INTS, ints: value }
      : { name, type: ATTR.FLOATS, floats: value };
  }
  if ('float' in value) return { name, type: ATTR.FLOAT, f: value.float };
  if ('floats' in value) return { name, type: ATTR.FLOATS, floats: value.floats };
  return { name, type: ATTR.TENSOR, t: tensorProto(name, value.tensor) };
}

// ---------------------------------------------------------------------------------------------------------------
// A model as an integrator drops it in: <dir>/<name>/manifest.json next to the .onnx file.

/** Everything in a manifest except what writeTestModel derives (name, version, file, sha256). */
export type TestManifestFields = Omit<z.input<typeof ModelManifest>, 'name' | 'version' | 'file' | 'sha256'> & {
  file?: string;
};

/**
 * Writes `<dir>/<name>/<file>` and `<dir>/<name>/manifest.json` with the file's real sha256, and returns the manifest
 * path. The manifest is parsed with ModelManifest first, so a test cannot write one the loader would refuse by mistake.
 */
export function writeTestModel(
  dir: string,
  name: string,
  version: string,
  bytes: Uint8Array,
  manifestFields: TestManifestFields,
): string {
  const modelDir = join(dir, name);
  mkdirSync(modelDir, { recursive: true });
  const file = manifestFields.file ?? `${name}-${version}.onnx`;
  writeFileSync(join(modelDir, file), bytes);
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  const manifest = ModelManifest.parse({ ...manifestFields, name, version, file, sha256 });
  const manifestPath = join(modelDir, 'manifest.json');
  writeFileSync(manifestPath, JSON.stringify(manifest, null, 2) + '\n');
  return manifestPath;
}
