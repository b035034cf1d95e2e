/**
 * Synthetic part images: a machined flange or a stamped plate on a textured conveyor belt, with lighting, position and
 * rotation drawn from a seed, and at most one surface defect (scratch, dent, crack, contamination) whose class and
 * bounding box are the frame's ground truth.
 *
 * One seed gives the same bytes every time (V8 ships its own libm, so the platform does not matter): the training set, the held-out set and the camera simulator's
 * ground truth are all "the frames for these seeds". Rendering is pure TypeScript into a raw RGB buffer, a few ms per
 * 256×256 frame, so the camera simulator can publish tens of frames per second on a shared 2-core box.
 *
 * All lengths are in pixels of a 256-pixel frame and scale with the frame's shorter side.
 */
import sharp from 'sharp';
import { DEFECT_CLASSES, type DefectClassName, type PixelBox, type SyntheticFrame } from '../contracts';
import { Prng } from './prng';

/**
 * Module-local handles on globals the per-pixel loops use. Under jest every module runs in a vm context, where each
 * global lookup (`Math`, `Infinity`) goes through the context's interceptor: ~100× slower per call, a 256×256 frame
 * went from ~5 ms to ~300 ms. A module constant is a closure variable in any context.
 */
const math = Math;
const INF = Number.POSITIVE_INFINITY;

export type SyntheticClass = 'good' | DefectClassName;

/** Every class the generator draws; 'good' first, then DEFECT_CLASSES in their declared order. */
export const SYNTHETIC_CLASSES: readonly SyntheticClass[] = ['good', ...DEFECT_CLASSES];

export const DEFAULT_FRAME_SIZE = 256;

/** Share of good parts when the seed picks the class; defects share the rest equally. */
export const GOOD_SHARE = 0.5;

export interface RenderSyntheticFrameOptions {
  seed: number;
  /** Absent: the seed picks (GOOD_SHARE good, the rest spread evenly over DEFECT_CLASSES). */
  class?: SyntheticClass;
  width?: number;
  height?: number;
}

/** The class `renderSyntheticFrame({ seed })` draws when no class is asked for. */
export function classForSeed(seed: number): SyntheticClass {
  return pickClass(new Prng(seed).next());
}

function pickClass(draw: number): SyntheticClass {
  if (draw < GOOD_SHARE) return 'good';
  const i = math.floor(((draw - GOOD_SHARE) / (1 - GOOD_SHARE)) * DEFECT_CLASSES.length);
  return DEFECT_CLASSES[math.min(i, DEFECT_CLASSES.length - 1)]!;
}

/** Encodes a frame as the camera sends it. PNG is lossless, so the pixels the worker decodes are the rendered ones. */
export async function encodeFrame(frame: SyntheticFrame, format: 'png' | 'jpeg'): Promise<Buffer> {
  const image = sharp(frame.rgb, { raw: { width: frame.width, height: frame.height, channels: 3 } });
  // Level 3 rather than the default 6: the bytes decode to the same pixels, and the simulator encodes every frame.
  return format === 'png' ? image.png({ compressionLevel: 3 }).toBuffer() : image.jpeg({ quality: 90 }).toBuffer();
}

// ---------------------------------------------------------------------------------------------------------------
// Scene

interface Hole {
  u: number;
  v: number;
  r: number;
}

/** The part in its own coordinates (u, v), centred on (0, 0); negative inside the metal, in pixels. */
interface PartShape {
  kind: 'flange' | 'plate';
  /** Outer radius (flange) or half-length (plate). */
  size: number;
  /** Plate: half-height and corner radius. Flange: bore radius in `bore`. */
  halfHeight: number;
  corner: number;
  bore: number;
  holes: Hole[];
}

/**
 * Signed distance in the part's coordinates. `exactBelow` lets the per-pixel loop skip the bolt holes' square roots
 * where they cannot matter: a hole further than that from (u, v) only decides distances deeper in the metal than
 * `-exactBelow`, where every caller sees "fully on the metal" either way.
 */
function partSdf(p: PartShape, u: number, v: number, exactBelow = INF): number {
  let d: number;
  if (p.kind === 'flange') {
    const r = math.sqrt(u * u + v * v);
    d = math.max(r - p.size, p.bore - r);
    // Bolt holes only matter inside the disc; skip the square roots elsewhere (most of the frame).
    if (d > 0) return d;
  } else {
    const qx = math.abs(u) - (p.size - p.corner);
    const qy = math.abs(v) - (p.halfHeight - p.corner);
    const ox = math.max(qx, 0);
    const oy = math.max(qy, 0);
    d = math.sqrt(ox * ox + oy * oy) + math.min(math.max(qx, qy), 0) - p.corner;
    if (d > 0) return d;
  }
  for (const h of p.holes) {
    const du = u - h.u;
    const dv = v - h.v;
    const d2 = du * du + dv * dv;
    const far = h.r + exactBelow;
    if (d2 > far * far) continue;
    const dh = h.r - math.sqrt(d2);
    if (dh > d) d = dh;
  }
  return d;
}

interface Scene {
  width: number;
  height: number;
  /** Pixels per pixel of a 256-pixel frame. */
  k: number;
  cx: number;
  cy: number;
  cosR: number;
  sinR: number;
  part: PartShape;
  lightX: number;
  lightY: number;
}

/** Signed distance to the part's edge at frame pixel centre (x, y); negative on the metal. */
function sdfAt(s: Scene, x: number, y: number): number {
  const dx = x + 0.5 - s.cx;
  const dy = y + 0.5 - s.cy;
  return partSdf(s.part, dx * s.cosR + dy * s.sinR, -dx * s.sinR + dy * s.cosR);
}

function clamp01(x: number): number {
  return x < 0 ? 0 : x > 1 ? 1 : x;
}

/**
 * Draws a frame. The same options give the same bytes; the stream of draws is fixed by the seed alone (the class draw
 * is taken even when a class is asked for), so a frame's background, part and lighting do not depend on its class.
 */
export function renderSyntheticFrame(opts: RenderSyntheticFrameOptions): SyntheticFrame {
  const width = opts.width ?? DEFAULT_FRAME_SIZE;
  const height = opts.height ?? DEFAULT_FRAME_SIZE;
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 32 || height < 32) {
    throw new Error(`synthetic frame size must be whole pixels, at least 32×32 (got ${width}×${height})`);
  }
  const rand = new Prng(opts.seed);
  const drawnClass = pickClass(rand.next());
  const cls = opts.class ?? drawnClass;

  const rgb = Buffer.allocUnsafe(width * height * 3);
  const scene = drawScene(rand, rgb, width, height);
  if (cls === 'good') return { width, height, rgb, truth: { class: 'good' } };

  const box = drawDefect(rand, scene, rgb, cls);
  return { width, height, rgb, truth: { class: cls, box } };
}

function drawScene(rand: Prng, rgb: Buffer, width: number, height: number): Scene {
  const S = math.min(width, height);
  const k = S / DEFAULT_FRAME_SIZE;
  const salt = math.floor(rand.next() * 4294967296) >>> 0;

  // Lighting: a linear falloff across the frame from a random side, and an overall exposure.
  const lightAngle = rand.uniform(0, 2 * math.PI);
  const lightX = math.cos(lightAngle);
  const lightY = math.sin(lightAngle);
  const lightSlope = rand.uniform(0.1, 0.45) / S;
  const exposure = rand.uniform(0.78, 1.15);

  // Conveyor belt: a dark tinted base, blotchy low-frequency value noise, a woven texture and fine grain.
  const bgLevel = rand.uniform(35, 85);
  const bgTint = [rand.uniform(-8, 8), rand.uniform(-8, 8), rand.uniform(-8, 8)] as const;
  const cell = (S / rand.int(5, 10)) | 0 || 1;
  const gridW = math.ceil(width / cell) + 2;
  const gridH = math.ceil(height / cell) + 2;
  const grid = new Float32Array(gridW * gridH);
  for (let i = 0; i < grid.length; i++) grid[i] = rand.next() * 2 - 1;
  const blotch = rand.uniform(6, 16);
  const weaveAngle = (rand.int(0, 1) * math.PI) / 2 + rand.uniform(-0.2, 0.2);
  const weaveFreq = (2 * math.PI) / (rand.uniform(3, 7) * k);
  const weaveX = math.cos(weaveAngle) * weaveFreq;
  const weaveY = math.sin(weaveAngle) * weaveFreq;
  const weaveAmp = rand.uniform(0, 7);

  // The part: where it lies, how it is turned, what it is.
  const size = S * rand.uniform(0.28, 0.36);
  const cx = width / 2 + rand.uniform(-0.1, 0.1) * S;
  const cy = height / 2 + rand.uniform(-0.1, 0.1) * S;
  const rotation = rand.uniform(0, 2 * math.PI);
  const part = rand.next() < 0.5 ? flange(rand, size) : plate(rand, size);
  const metalLevel = rand.uniform(135, 190);
  const finish = rand.int(0, 2);
  const metalTint = finish === 0 ? [-4, 0, 8] : finish === 1 ? [0, 0, 0] : [7, 3, -3];
  const brushAmp = rand.uniform(3, 9);
  const specAngle = rand.uniform(0, 2 * math.PI);
  const specCos = math.cos(specAngle) / size;
  const specSin = math.sin(specAngle) / size;
  const specOffset = rand.uniform(-0.6, 0.6);
  const specInvWidth = 1 / rand.uniform(0.15, 0.4) ** 2;
  const specAmp = rand.uniform(12, 40);
  const bevel = rand.uniform(1.5, 3.5) * k;
  const shadowStrength = rand.uniform(0.3, 0.55);
  const shadowSoft = rand.uniform(3, 7) * k;
  const cosR = math.cos(rotation);
  const sinR = math.sin(rotation);
  const saltBrush = (salt ^ 0x5bd1e995) >>> 0;
  // Below this depth into the metal nothing in the loop depends on the distance (bevel, coverage).
  const exactDepth = bevel + 1;

  // Beyond this distance from the part's centre a pixel is belt only, out of reach of the contact shadow: its signed
  // distance cannot be below `far - bound`, so skipping partSdf there changes no pixel (and saves most of the frame).
  const bound =
    part.kind === 'flange' ? part.size : math.sqrt(part.size * part.size + part.halfHeight * part.halfHeight);
  const far = bound + 6 * shadowSoft + 1;
  const far2 = far * far;
  const isFlange = part.kind === 'flange';
  let o = 0;
  for (let y = 0; y < height; y++) {
    const gy = y / cell;
    const iy = gy | 0;
    let ty = gy - iy;
    ty = ty * ty * (3 - 2 * ty);
    for (let x = 0; x < width; x++, o += 3) {
      const dx = x + 0.5 - cx;
      const dy = y + 0.5 - cy;
      const u = dx * cosR + dy * sinR;
      const v = -dx * sinR + dy * cosR;
      const sd = dx * dx + dy * dy > far2 ? INF : partSdf(part, u, v, exactDepth);
      const light = exposure * (1 + lightSlope * (dx * lightX + dy * lightY));

      let r = 0;
      let g = 0;
      let b = 0;
      const cover = clamp01(0.5 - sd);
      if (cover < 1) {
        const gx = x / cell;
        const ix = gx | 0;
        let tx = gx - ix;
        tx = tx * tx * (3 - 2 * tx);
        const i0 = iy * gridW + ix;
        const n0 = grid[i0]! + (grid[i0 + 1]! - grid[i0]!) * tx;
        const n1 = grid[i0 + gridW]! + (grid[i0 + gridW + 1]! - grid[i0 + gridW]!) * tx;
        let level =
          bgLevel +
          blotch * (n0 + (n1 - n0) * ty) +
          weaveAmp * SINE[((x * weaveX + y * weaveY) * SINE_PER_RADIAN) & SINE_MASK]! +
          4 * hashNoise(x, y, salt);
        // Contact shadow: the belt darkens near the part's edge (and inside its holes).
        if (sd < 6 * shadowSoft) level *= 1 - shadowStrength * expNeg(math.max(sd, 0) / shadowSoft);
        const w = 1 - cover;
        r = (level + bgTint[0]) * w;
        g = (level + bgTint[1]) * w;
        b = (level + bgTint[2]) * w;
      }
      if (cover > 0) {
        // Turning marks run round a flange; a stamped plate is brushed along its length.
        const brush = isFlange
          ? hashNoise(math.round(math.sqrt(u * u + v * v) * 1.5), 0, saltBrush)
          : hashNoise(math.round(v * 1.5), 1, saltBrush);
        const t = u * specCos + v * specSin - specOffset;
        let level =
          metalLevel + brushAmp * brush + 2.5 * hashNoise(x, y, saltBrush) + specAmp * expNeg(t * t * specInvWidth);
        if (-sd < bevel) level *= 0.78 + 0.22 * clamp01(-sd / bevel);
        r += (level + metalTint[0]!) * cover;
        g += (level + metalTint[1]!) * cover;
        b += (level + metalTint[2]!) * cover;
      }
      rgb[o] = toByte(r * light);
      rgb[o + 1] = toByte(g * light);
      rgb[o + 2] = toByte(b * light);
    }
  }
  return { width, height, k, cx, cy, cosR, sinR, part, lightX, lightY };
}

/** Sine table for the belt weave: math.sin per pixel was a fifth of the frame time. */
const SINE_SIZE = 1024;
const SINE_MASK = SINE_SIZE - 1;
const SINE_PER_RADIAN = SINE_SIZE / (2 * math.PI);
const SINE = Float32Array.from({ length: SINE_SIZE }, (_, i) => math.sin((2 * math.PI * i) / SINE_SIZE));

function flange(rand: Prng, size: number): PartShape {
  const count = rand.int(4, 6);
  const ring = size * rand.uniform(0.64, 0.74);
  const r = size * rand.uniform(0.06, 0.09);
  const phase = rand.uniform(0, 2 * math.PI);
  const holes: Hole[] = [];
  for (let i = 0; i < count; i++) {
    const a = phase + (2 * math.PI * i) / count;
    holes.push({ u: ring * math.cos(a), v: ring * math.sin(a), r });
  }
  return { kind: 'flange', size, halfHeight: size, corner: 0, bore: size * rand.uniform(0.18, 0.3), holes };
}

function plate(rand: Prng, size: number): PartShape {
  const halfHeight = size * rand.uniform(0.6, 0.8);
  const r = size * rand.uniform(0.07, 0.1);
  const at = size * rand.uniform(0.66, 0.76);
  return {
    kind: 'plate',
    size,
    halfHeight,
    corner: halfHeight * rand.uniform(0.2, 0.5),
    bore: 0,
    holes: [
      { u: -at, v: 0, r },
      { u: at, v: 0, r },
    ],
  };
}

/**
 * Per-pixel noise without a stream: a hash of (x, y, salt) to [-1, 1). A stream draw per pixel would tie every later
 * draw to the frame size; the hash keeps the scene's draws independent of it, and is cheaper. Local to this module:
 * called three times per pixel, it must not go through a module-export getter.
 */
function hashNoise(x: number, y: number, salt: number): number {
  let h = (math.imul(x, 0x27d4_eb2d) ^ math.imul(y, 0x1656_67b1) ^ salt) >>> 0;
  h = math.imul(h ^ (h >>> 15), 0x2c1b_3c6d);
  h = math.imul(h ^ (h >>> 12), 0x297a_2d39);
  h ^= h >>> 15;
  return (h >>> 0) / 2_147_483_648 - 1;
}

/** exp(-x) for x ≥ 0 from a table (1/32 steps, 0 beyond 16): smooth enough for shading, and cheap per pixel. */
const EXP_STEPS = 32;
const EXP_TABLE = Float32Array.from({ length: 16 * EXP_STEPS + 1 }, (_, i) => math.exp(-i / EXP_STEPS));
function expNeg(x: number): number {
  const i = (x * EXP_STEPS) | 0;
  return i < EXP_TABLE.length ? EXP_TABLE[i]! : 0;
}

function toByte(x: number): number {
  return x <= 0 ? 0 : x >= 255 ? 255 : (x + 0.5) | 0;
}

// ---------------------------------------------------------------------------------------------------------------
// Defects

/**
 * A pixel belongs to the ground-truth box when the defect changed one of its channels by at least this much (of 255):
 * the box is what a person would draw round the visible defect, not round its faint anti-aliased fringe.
 */
export const VISIBLE_CHANGE = 8;

/** Writes defect pixels and grows the ground-truth box over the ones it visibly changed. */
class DefectPainter {
  private x0 = INF;
  private y0 = INF;
  private x1 = -INF;
  private y1 = -INF;

  constructor(private readonly rgb: Buffer) {}

  paint(o: number, x: number, y: number, r: number, g: number, b: number): void {
    const rgb = this.rgb;
    const nr = toByte(r);
    const ng = toByte(g);
    const nb = toByte(b);
    const change = math.max(math.abs(nr - rgb[o]!), math.abs(ng - rgb[o + 1]!), math.abs(nb - rgb[o + 2]!));
    rgb[o] = nr;
    rgb[o + 1] = ng;
    rgb[o + 2] = nb;
    if (change < VISIBLE_CHANGE) return;
    if (x < this.x0) this.x0 = x;
    if (x > this.x1) this.x1 = x;
    if (y < this.y0) this.y0 = y;
    if (y > this.y1) this.y1 = y;
  }

  box(): PixelBox | undefined {
    if (this.x1 < this.x0) return undefined;
    return { x: this.x0, y: this.y0, width: this.x1 - this.x0 + 1, height: this.y1 - this.y0 + 1 };
  }
}

interface Region {
  x0: number;
  y0: number;
  x1: number;
  y1: number;
}

function regionAround(s: Scene, minX: number, minY: number, maxX: number, maxY: number, pad: number): Region {
  return {
    x0: math.max(0, math.floor(minX - pad)),
    y0: math.max(0, math.floor(minY - pad)),
    x1: math.min(s.width - 1, math.ceil(maxX + pad)),
    y1: math.min(s.height - 1, math.ceil(maxY + pad)),
  };
}

/**
 * A point on the metal at least `margin` pixels from any edge (rim, bore, bolt holes), so the defect is seen on the
 * part rather than on the belt. Falls back to a point on the ring between bore and rim, which is always metal.
 */
function pointOnMetal(rand: Prng, s: Scene, margin: number): { x: number; y: number } {
  const reach = s.part.size;
  for (let attempt = 0; attempt < 64; attempt++) {
    const u = rand.uniform(-reach, reach);
    const v = rand.uniform(-reach, reach);
    if (partSdf(s.part, u, v) < -margin) return toFrame(s, u, v);
  }
  return toFrame(s, s.part.kind === 'flange' ? (s.part.size + s.part.bore) / 2 : 0, 0);
}

/** The direction from a frame point towards the part's centre, in radians. */
function inwards(s: Scene, from: { x: number; y: number }): number {
  return math.atan2(s.cy - 0.5 - from.y, s.cx - 0.5 - from.x);
}

function toFrame(s: Scene, u: number, v: number): { x: number; y: number } {
  return { x: s.cx + u * s.cosR - v * s.sinR - 0.5, y: s.cy + u * s.sinR + v * s.cosR - 0.5 };
}

function drawDefect(rand: Prng, s: Scene, rgb: Buffer, cls: DefectClassName): PixelBox {
  // A defect is always drawn on the metal, so a box always exists; the loop guards the impossible case of a defect
  // masked away entirely by an edge (a new placement is drawn from the same stream, so it stays deterministic).
  for (let attempt = 0; attempt < 8; attempt++) {
    const box = drawOneDefect(rand, s, rgb, cls);
    if (box) return box;
  }
  throw new Error(`synthetic ${cls} could not be placed on the part`);
}

function drawOneDefect(rand: Prng, s: Scene, rgb: Buffer, cls: DefectClassName): PixelBox | undefined {
  switch (cls) {
    case 'scratch':
      return drawScratch(rand, s, rgb);
    case 'crack':
      return drawCrack(rand, s, rgb);
    case 'dent':
      return drawDent(rand, s, rgb);
    case 'contamination':
      return drawContamination(rand, s, rgb);
  }
}

interface Segment {
  ax: number;
  ay: number;
  bx: number;
  by: number;
  /** Half-width of the line along this segment, in pixels. */
  half: number;
}

/**
 * Strokes a polyline: `shade(channelValue, alpha)` gives one channel's new value, alpha in 0..1 from the centre line
 * outwards, already faded by the part's edge coverage so nothing is drawn on the belt.
 */
function strokePolyline(
  s: Scene,
  rgb: Buffer,
  segments: Segment[],
  shade: (value: number, alpha: number) => number,
): PixelBox | undefined {
  let minX = INF;
  let minY = INF;
  let maxX = -INF;
  let maxY = -INF;
  let maxHalf = 0;
  for (const sg of segments) {
    minX = math.min(minX, sg.ax, sg.bx);
    maxX = math.max(maxX, sg.ax, sg.bx);
    minY = math.min(minY, sg.ay, sg.by);
    maxY = math.max(maxY, sg.ay, sg.by);
    maxHalf = math.max(maxHalf, sg.half);
  }
  const region = regionAround(s, minX, minY, maxX, maxY, maxHalf + 2);
  const regionWidth = region.x1 - region.x0 + 1;
  // Each segment fills only its own neighbourhood of a shared alpha map (max over segments): testing every segment
  // at every pixel of the polyline's box was most of a crack's cost.
  const alphas = new Float32Array(regionWidth * (region.y1 - region.y0 + 1));
  for (const sg of segments) {
    const reach = sg.half + 0.5;
    const x0 = math.max(region.x0, math.floor(math.min(sg.ax, sg.bx) - reach));
    const x1 = math.min(region.x1, math.ceil(math.max(sg.ax, sg.bx) + reach));
    const y0 = math.max(region.y0, math.floor(math.min(sg.ay, sg.by) - reach));
    const y1 = math.min(region.y1, math.ceil(math.max(sg.ay, sg.by) + reach));
    for (let y = y0; y <= y1; y++) {
      let i = (y - region.y0) * regionWidth + (x0 - region.x0);
      for (let x = x0; x <= x1; x++, i++) {
        const a = 1 - distanceToSegment(x, y, sg) / reach;
        if (a > alphas[i]!) alphas[i] = a;
      }
    }
  }
  const painter = new DefectPainter(rgb);
  let i = 0;
  for (let y = region.y0; y <= region.y1; y++) {
    for (let x = region.x0; x <= region.x1; x++, i++) {
      let alpha = alphas[i]!;
      if (alpha <= 0) continue;
      alpha *= clamp01(0.5 - sdfAt(s, x, y));
      if (alpha <= 0.01) continue;
      const o = (y * s.width + x) * 3;
      painter.paint(o, x, y, shade(rgb[o]!, alpha), shade(rgb[o + 1]!, alpha), shade(rgb[o + 2]!, alpha));
    }
  }
  return painter.box();
}

function distanceToSegment(x: number, y: number, sg: Segment): number {
  const vx = sg.bx - sg.ax;
  const vy = sg.by - sg.ay;
  const len2 = vx * vx + vy * vy;
  const t = len2 > 0 ? clamp01(((x - sg.ax) * vx + (y - sg.ay) * vy) / len2) : 0;
  const px = sg.ax + t * vx - x;
  const py = sg.ay + t * vy - y;
  return math.sqrt(px * px + py * py);
}

/** A tool scratch: a long, gently curved, thin line, usually brighter than the metal (fresh metal shows), sometimes darker. */
function drawScratch(rand: Prng, s: Scene, rgb: Buffer): PixelBox | undefined {
  const k = s.k;
  const length = rand.uniform(32, 72) * k;
  const start = pointOnMetal(rand, s, 10 * k);
  const count = 6;
  // Heading roughly towards the part's middle keeps most of the line on the metal rather than running off the edge.
  let angle = inwards(s, start) + rand.uniform(-1, 1);
  const bend = rand.uniform(-0.12, 0.12);
  const half = rand.uniform(0.7, 1.2) * k;
  const segments: Segment[] = [];
  let { x, y } = start;
  for (let i = 0; i < count; i++) {
    const nx = x + (math.cos(angle) * length) / count;
    const ny = y + (math.sin(angle) * length) / count;
    segments.push({ ax: x, ay: y, bx: nx, by: ny, half });
    x = nx;
    y = ny;
    angle += bend + rand.uniform(-0.05, 0.05);
  }
  const contrast = rand.uniform(50, 85) * (rand.next() < 0.75 ? 1 : -1);
  return strokePolyline(s, rgb, segments, (value, alpha) => value + contrast * alpha);
}

/** A fatigue crack: a short, jagged dark line, thinning towards its ends, sometimes with a side branch. */
function drawCrack(rand: Prng, s: Scene, rgb: Buffer): PixelBox | undefined {
  const k = s.k;
  const start = pointOnMetal(rand, s, 14 * k);
  const count = rand.int(8, 14);
  const baseHalf = rand.uniform(0.8, 1.3) * k;
  const segments: Segment[] = [];
  const walk = (x: number, y: number, angle: number, n: number, widthScale: number): void => {
    for (let i = 0; i < n; i++) {
      const step = rand.uniform(3, 6) * k;
      angle += rand.uniform(-0.65, 0.65);
      const nx = x + math.cos(angle) * step;
      const ny = y + math.sin(angle) * step;
      const taper = 1 - 0.55 * math.abs((2 * i) / math.max(1, n - 1) - 1);
      segments.push({ ax: x, ay: y, bx: nx, by: ny, half: baseHalf * taper * widthScale });
      x = nx;
      y = ny;
    }
  };
  const heading = inwards(s, start) + rand.uniform(-1.2, 1.2);
  walk(start.x, start.y, heading, count, 1);
  if (rand.next() < 0.5) {
    const from = segments[rand.int(2, count - 3)]!;
    walk(from.bx, from.by, heading + (rand.next() < 0.5 ? 0.9 : -0.9), rand.int(3, 6), 0.7);
  }
  const darkness = rand.uniform(0.55, 0.75);
  return strokePolyline(s, rgb, segments, (value, alpha) => value * (1 - darkness * math.min(1, alpha * 1.4)));
}

/** A dent: an elliptical bowl, shaded dark on the side facing the light and bright on the other, with a bright rim. */
function drawDent(rand: Prng, s: Scene, rgb: Buffer): PixelBox | undefined {
  const k = s.k;
  const rx = rand.uniform(7, 14) * k;
  const ry = rx * rand.uniform(0.6, 1);
  const centre = pointOnMetal(rand, s, rx * 0.8);
  const angle = rand.uniform(0, math.PI);
  const ca = math.cos(angle);
  const sa = math.sin(angle);
  // The light direction in the ellipse's own axes, so the slope facing the light is the dark one.
  const lu = s.lightX * ca + s.lightY * sa;
  const lv = -s.lightX * sa + s.lightY * ca;
  const slopeAmp = rand.uniform(50, 80);
  const depthAmp = rand.uniform(15, 30);
  const rimAmp = rand.uniform(10, 25);
  const reach = rx * 1.3;
  const region = regionAround(s, centre.x, centre.y, centre.x, centre.y, reach + 1);
  const painter = new DefectPainter(rgb);
  for (let y = region.y0; y <= region.y1; y++) {
    for (let x = region.x0; x <= region.x1; x++) {
      const dx = x - centre.x;
      const dy = y - centre.y;
      const p = (dx * ca + dy * sa) / rx;
      const q = (-dx * sa + dy * ca) / ry;
      const r2 = p * p + q * q;
      if (r2 > 1.69) continue;
      const cover = clamp01(0.5 - sdfAt(s, x, y));
      if (cover <= 0) continue;
      const r = math.sqrt(r2);
      let delta = rimAmp * math.exp(-(((r - 1) / 0.15) ** 2));
      if (r2 < 1) {
        const bowl = 1 - r2;
        delta += -slopeAmp * (p * lu + q * lv) * bowl - depthAmp * bowl * bowl;
      }
      delta *= cover;
      const o = (y * s.width + x) * 3;
      painter.paint(o, x, y, rgb[o]! + delta, rgb[o + 1]! + delta, rgb[o + 2]! + delta);
    }
  }
  return painter.box();
}

const CONTAMINANTS = [
  { name: 'oil', rgb: [28, 24, 18], opacity: [0.6, 0.85] },
  { name: 'rust', rgb: [150, 72, 30], opacity: [0.65, 0.9] },
  { name: 'grime', rgb: [70, 62, 40], opacity: [0.6, 0.85] },
  { name: 'marking paint', rgb: [45, 80, 150], opacity: [0.6, 0.85] },
] as const;

/** Contamination: an irregular blob (a few merged discs) of oil, rust, grime or marking paint, mottled. */
function drawContamination(rand: Prng, s: Scene, rgb: Buffer): PixelBox | undefined {
  const k = s.k;
  const centre = pointOnMetal(rand, s, 10 * k);
  const kind = CONTAMINANTS[rand.int(0, CONTAMINANTS.length - 1)]!;
  const opacity = rand.uniform(kind.opacity[0], kind.opacity[1]);
  const count = rand.int(3, 6);
  const spread = rand.uniform(4, 10) * k;
  const blobs: { x: number; y: number; inv: number }[] = [];
  let minX = INF;
  let minY = INF;
  let maxX = -INF;
  let maxY = -INF;
  for (let i = 0; i < count; i++) {
    const a = rand.uniform(0, 2 * math.PI);
    const d = rand.uniform(0, spread);
    const r = rand.uniform(3.5, 9) * k;
    const x = centre.x + math.cos(a) * d;
    const y = centre.y + math.sin(a) * d;
    blobs.push({ x, y, inv: 1 / (r * r) });
    minX = math.min(minX, x - 2 * r);
    maxX = math.max(maxX, x + 2 * r);
    minY = math.min(minY, y - 2 * r);
    maxY = math.max(maxY, y + 2 * r);
  }
  const salt = math.floor(rand.next() * 4294967296) >>> 0;
  const region = regionAround(s, minX, minY, maxX, maxY, 0);
  const painter = new DefectPainter(rgb);
  for (let y = region.y0; y <= region.y1; y++) {
    for (let x = region.x0; x <= region.x1; x++) {
      let field = 0;
      for (const b of blobs) {
        const dx = x - b.x;
        const dy = y - b.y;
        field += math.exp(-(dx * dx + dy * dy) * b.inv);
      }
      // Metaball edge between field 0.35 and 0.65, smoothed.
      let alpha = clamp01((field - 0.35) / 0.3);
      if (alpha <= 0) continue;
      alpha = alpha * alpha * (3 - 2 * alpha) * clamp01(0.5 - sdfAt(s, x, y));
      if (alpha <= 0.01) continue;
      const a = opacity * alpha * (0.85 + 0.15 * hashNoise(x, y, salt));
      const o = (y * s.width + x) * 3;
      painter.paint(
        o,
        x,
        y,
        rgb[o]! * (1 - a) + kind.rgb[0] * a,
        rgb[o + 1]! * (1 - a) + kind.rgb[1] * a,
        rgb[o + 2]! * (1 - a) + kind.rgb[2] * a,
      );
    }
  }
  return painter.box();
}
