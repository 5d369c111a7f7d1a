// Conversions between the safetensors dtypes this project reads and writes and float32.
// Every tensor is computed in float32; F16 and BF16 are storage formats only.

/** Bytes per element of every dtype the safetensors format defines. */
export const DTYPE_BYTES: Record<string, number> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U64: 8,
  U32: 4,
  U16: 2,
  U8: 1,
  BOOL: 1,
  F8_E4M3: 1,
  F8_E5M2: 1,
};

/** Dtypes that can be decoded to float32 for computation. */
export const FLOAT_DTYPES = ["F32", "F16", "BF16"] as const;
export type FloatDtype = (typeof FLOAT_DTYPES)[number];

export function isFloatDtype(dtype: string): dtype is FloatDtype {
  return (FLOAT_DTYPES as readonly string[]).includes(dtype);
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exponent = (h >> 10) & 0x1f;
  const mantissa = h & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24; // subnormal
  if (exponent === 0x1f) return mantissa ? NaN : sign * Infinity;
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
}

/** The float16 bits of a number, rounded to nearest even. */
export function floatToHalf(value: number): number {
  // Round to nearest, ties to even, via the float32 bit pattern.
  f32[0] = value;
  const x = u32[0];
  const sign = (x >>> 16) & 0x8000;
  const exponent = (x >>> 23) & 0xff;
  let mantissa = x & 0x7fffff;
  if (exponent === 0xff) return sign | 0x7c00 | (mantissa ? 0x200 : 0); // inf or NaN
  const e = exponent - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00; // overflow to inf
  if (e <= 0) {
    if (e < -10) return sign; // underflow to zero
    mantissa |= 0x800000; // implicit leading one
    const shift = 14 - e;
    const half = mantissa >>> shift;
    const rest = mantissa & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    const rounded = rest > halfway || (rest === halfway && half & 1) ? half + 1 : half;
    return sign | rounded;
  }
  const half = (e << 10) | (mantissa >>> 13);
  const rest = mantissa & 0x1fff;
  const rounded = rest > 0x1000 || (rest === 0x1000 && half & 1) ? half + 1 : half;
  return sign | rounded; // a carry into the exponent is the correct rounding
}

/** Little-endian platforms (every one Node runs on today) can view the bytes directly. */
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** The bytes as 16-bit words: a view when aligned, else a copy. */
function words16(bytes: Uint8Array): Uint16Array {
  if (bytes.byteOffset % 2 === 0) return new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 2);
  return new Uint16Array(bytes.slice().buffer);
}

/** Decode raw little-endian bytes of a float dtype into a new Float32Array, or into `into` (reused, e.g. one row at a time). */
export function decodeToFloat32(bytes: Uint8Array, dtype: FloatDtype, into?: Float32Array): Float32Array {
  const count = bytes.byteLength / DTYPE_BYTES[dtype];
  if (into && into.length !== count) throw new Error(`decoding ${count} ${dtype} values into an array of ${into.length}`);
  const out = into ?? new Float32Array(count);
  if (LITTLE_ENDIAN && dtype === "F32") {
    out.set(bytes.byteOffset % 4 === 0 ? new Float32Array(bytes.buffer, bytes.byteOffset, count) : new Float32Array(bytes.slice().buffer));
    return out;
  }
  if (LITTLE_ENDIAN && dtype === "BF16") {
    const bits = new Uint32Array(out.buffer, out.byteOffset, count);
    const words = words16(bytes);
    for (let i = 0; i < count; i++) bits[i] = words[i] << 16;
    return out;
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (dtype === "F32") {
    for (let i = 0; i < count; i++) out[i] = view.getFloat32(i * 4, true);
  } else if (dtype === "BF16") {
    const bits = new Uint32Array(out.buffer, out.byteOffset, count);
    for (let i = 0; i < count; i++) bits[i] = view.getUint16(i * 2, true) << 16;
  } else {
    for (let i = 0; i < count; i++) out[i] = halfToFloat(view.getUint16(i * 2, true));
  }
  return out;
}

/** Encode float32 values as little-endian bytes of `dtype`, rounding to nearest even: new bytes, or into `into`. */
export function encodeFromFloat32(values: Float32Array, dtype: FloatDtype, into?: Uint8Array): Uint8Array {
  const size = values.length * DTYPE_BYTES[dtype];
  if (into && into.length !== size) throw new Error(`encoding ${values.length} ${dtype} values (${size} bytes) into ${into.length} bytes`);
  const out = into ?? new Uint8Array(size);
  if (LITTLE_ENDIAN && dtype === "F32") {
    out.set(new Uint8Array(values.buffer, values.byteOffset, values.byteLength));
    return out;
  }
  if (LITTLE_ENDIAN && dtype === "BF16" && out.byteOffset % 2 === 0) {
    const words = new Uint16Array(out.buffer, out.byteOffset, values.length);
    const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
    for (let i = 0; i < values.length; i++) {
      const x = bits[i];
      // Round to nearest, ties to even; a NaN stays a NaN (its payload's top bit set).
      words[i] = (x & 0x7f800000) === 0x7f800000 && x & 0x7fffff ? (x >>> 16) | 0x40 : (x + 0x7fff + ((x >>> 16) & 1)) >>> 16;
    }
    return out;
  }
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  if (dtype === "F32") {
    for (let i = 0; i < values.length; i++) view.setFloat32(i * 4, values[i], true);
  } else if (dtype === "BF16") {
    for (let i = 0; i < values.length; i++) {
      f32[0] = values[i];
      const x = u32[0];
      let bf: number;
      if ((x & 0x7f800000) === 0x7f800000 && x & 0x7fffff)
        bf = (x >>> 16) | 0x40; // keep NaN a NaN
      else bf = (x + 0x7fff + ((x >>> 16) & 1)) >>> 16;
      view.setUint16(i * 2, bf & 0xffff, true);
    }
  } else {
    for (let i = 0; i < values.length; i++) view.setUint16(i * 2, floatToHalf(values[i]), true);
  }
  return out;
}
