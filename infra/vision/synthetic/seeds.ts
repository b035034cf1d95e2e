/**
 * Seed ranges of the synthetic part images. A frame is a pure function of its seed (part-generator.ts), so these
 * ranges are the whole separation between the images the shipped model was trained on and the ones it is judged by.
 * models/dataset.ts draws training and validation images from the first two ranges only; the held-out evaluation
 * (models/evaluate.ts), the camera simulator and the inference benchmark draw from HELD_OUT_SEED_START upwards.
 */

/** Training images: seeds TRAIN_SEED_START .. TRAIN_SEED_START + count - 1. */
export const TRAIN_SEED_START = 1;

/** Validation images (early stopping, threshold choice): never used for gradient steps. */
export const VALIDATION_SEED_START = 10_000_000;

/** Upper bound (exclusive) of every seed training or validation may use. */
export const TRAINING_SEED_LIMIT = 100_000_000;

/** First held-out seed: no seed at or above it was ever rendered for training or validation. */
export const HELD_OUT_SEED_START = 2_000_000_000;

/** Seeds are unsigned 32-bit integers: 0 .. MAX_SEED. */
export const MAX_SEED = 0xffff_ffff;

/** True when a frame with this seed can be used to judge the shipped model (it was never trained or tuned on). */
export function isHeldOutSeed(seed: number): boolean {
  return Number.isInteger(seed) && seed >= HELD_OUT_SEED_START && seed <= MAX_SEED;
}
