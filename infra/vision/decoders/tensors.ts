/** Reading one batch item out of an onnxruntime output, with errors that name the tensor and what was expected. */
import type { Tensor } from 'onnxruntime-node';

/** The float32 data of a named output; throws when the output is missing or of another type. */
export function floatOutput(outputs: Readonly<Record<string, Tensor>>, name: string): Tensor & { data: Float32Array } {
  const tensor = outputs[name];
  if (!tensor) throw new Error(`model output "${name}" is missing from the session results`);
  // The type tag, not `instanceof`: onnxruntime's native binding may create the array in another realm (jest's vm).
  if (tensor.type !== 'float32') {
    throw new Error(`model output "${name}" is ${tensor.type}; the decoder reads float32`);
  }
  return tensor as Tensor & { data: Float32Array };
}

/** The slice of a batch-first tensor that belongs to item `index`. */
export function itemSlice(tensor: Tensor & { data: Float32Array }, index: number, name: string): Float32Array {
  const batch = tensor.dims[0] ?? 0;
  if (index < 0 || index >= batch) {
    throw new Error(`model output "${name}" has batch ${batch}; item ${index} does not exist`);
  }
  const per = tensor.data.length / batch;
  return tensor.data.subarray(index * per, (index + 1) * per);
}

/** Shape without the batch dimension, e.g. [N, 1, 64, 64] -> [1, 64, 64]. */
export function itemDims(tensor: Tensor): readonly number[] {
  return tensor.dims.slice(1);
}
