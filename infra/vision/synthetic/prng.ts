/**
 * A small seeded PRNG for the synthetic images: sfc32 (Chris Doty-Humphrey's Small Fast Counting generator, from
 * PractRand), seeded through murmur3's 32-bit finaliser. Never Math.random: a frame must be a pure function of its
 * seed. sfc32 rather than mulberry32 because mulberry32's state is a Weyl sequence, so two seeds that differ by a
 * multiple of its increment give the same stream shifted; sfc32's 128-bit state makes that practically impossible.
 */

/** murmur3 fmix32: spreads consecutive integers over the whole 32-bit range. */
export function mix32(x: number): number {
  let h = x >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85eb_ca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2_ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

export class Prng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: number) {
    this.a = mix32(seed ^ 0x9e37_79b9);
    this.b = mix32(seed ^ 0x243f_6a88);
    this.c = mix32(seed ^ 0xb7e1_5162);
    this.d = 1;
    // The first outputs of a fresh sfc32 are still close to the seed words; discard them as its author recommends.
    for (let i = 0; i < 12; i++) this.nextUint32();
  }

  nextUint32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  /** Uniform in [0, 1). */
  next(): number {
    return this.nextUint32() / 4_294_967_296;
  }

  /** Uniform in [lo, hi). */
  uniform(lo: number, hi: number): number {
    return lo + (hi - lo) * this.next();
  }

  /** Uniform integer in [lo, hi], both included. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  /** Approximately normal (Irwin-Hall of 4), mean 0, standard deviation 1: cheap and bounded (|x| < 3.5). */
  gauss(): number {
    return (this.next() + this.next() + this.next() + this.next() - 2) * 1.732_050_8;
  }

  pick<T>(items: readonly T[]): T {
    const item = items[Math.floor(this.next() * items.length)];
    if (item === undefined) throw new RangeError('pick from an empty list');
    return item;
  }
}
