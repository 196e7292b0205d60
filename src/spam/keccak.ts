// Keccak-256 as Ethereum and Monero use it: the original Keccak padding (0x01 … 0x80), not
// SHA3-256's (0x06 … 0x80), which is all Node's crypto offers. Needed only for the checksums of
// cryptocurrency addresses (rules/crypto-address.ts), so it is small rather than fast: the
// 64-bit lanes are kept as pairs of 32-bit halves (FIPS 202 §3.2 gives the step mappings).
// None of the installed packages exports Keccak (mailauth and nodemailer hash with node:crypto).

// Round constants (FIPS 202 §3.2.5), as [high, low] halves.
const RC_HI = Uint32Array.from([0, 0, 0x80000000, 0x80000000, 0, 0, 0x80000000, 0x80000000, 0, 0, 0, 0, 0, 0x80000000, 0x80000000, 0x80000000, 0x80000000, 0x80000000, 0, 0x80000000, 0x80000000, 0x80000000, 0, 0x80000000]);
const RC_LO = Uint32Array.from([
  0x00000001, 0x00008082, 0x0000808a, 0x80008000, 0x0000808b, 0x80000001, 0x80008081, 0x00008009, 0x0000008a, 0x00000088, 0x80008009, 0x8000000a, 0x8000808b, 0x0000008b, 0x00008089, 0x00008003,
  0x00008002, 0x00000080, 0x0000800a, 0x8000000a, 0x80008081, 0x00008080, 0x80000001, 0x80008008,
]);
// Rotation offsets of lane x + 5y (ρ, §3.2.2).
const ROT = [0, 1, 62, 28, 27, 36, 44, 6, 55, 20, 3, 10, 43, 25, 39, 41, 45, 15, 21, 8, 18, 2, 61, 56, 14];
// Where lane x + 5y goes (π, §3.2.3): to y + 5((2x + 3y) mod 5).
const PI = ROT.map((_, i) => {
  const x = i % 5;
  const y = (i - x) / 5;
  return y + 5 * ((2 * x + 3 * y) % 5);
});

/** Keccak-f[1600] on a state of 25 lanes, lane i as lo = s[2i], hi = s[2i + 1]. */
function permute(s: Uint32Array): void {
  const c = new Uint32Array(10);
  const b = new Uint32Array(50);
  for (let round = 0; round < 24; round++) {
    // θ
    for (let x = 0; x < 5; x++) {
      c[2 * x] = s[2 * x]! ^ s[2 * x + 10]! ^ s[2 * x + 20]! ^ s[2 * x + 30]! ^ s[2 * x + 40]!;
      c[2 * x + 1] = s[2 * x + 1]! ^ s[2 * x + 11]! ^ s[2 * x + 21]! ^ s[2 * x + 31]! ^ s[2 * x + 41]!;
    }
    for (let x = 0; x < 5; x++) {
      const l1 = c[2 * ((x + 1) % 5)]!;
      const h1 = c[2 * ((x + 1) % 5) + 1]!;
      const dlo = c[2 * ((x + 4) % 5)]! ^ ((l1 << 1) | (h1 >>> 31));
      const dhi = c[2 * ((x + 4) % 5) + 1]! ^ ((h1 << 1) | (l1 >>> 31));
      for (let y = 0; y < 25; y += 5) {
        s[2 * (x + y)] = s[2 * (x + y)]! ^ dlo;
        s[2 * (x + y) + 1] = s[2 * (x + y) + 1]! ^ dhi;
      }
    }
    // ρ and π
    for (let i = 0; i < 25; i++) {
      const lo = s[2 * i]!;
      const hi = s[2 * i + 1]!;
      const r = ROT[i]!;
      const j = PI[i]!;
      if (r === 0) {
        b[2 * j] = lo;
        b[2 * j + 1] = hi;
      } else if (r < 32) {
        b[2 * j] = (lo << r) | (hi >>> (32 - r));
        b[2 * j + 1] = (hi << r) | (lo >>> (32 - r));
      } else if (r === 32) {
        b[2 * j] = hi;
        b[2 * j + 1] = lo;
      } else {
        const m = r - 32;
        b[2 * j] = (hi << m) | (lo >>> (32 - m));
        b[2 * j + 1] = (lo << m) | (hi >>> (32 - m));
      }
    }
    // χ
    for (let y = 0; y < 25; y += 5) {
      for (let x = 0; x < 5; x++) {
        const i = y + x;
        const i1 = y + ((x + 1) % 5);
        const i2 = y + ((x + 2) % 5);
        s[2 * i] = b[2 * i]! ^ (~b[2 * i1]! & b[2 * i2]!);
        s[2 * i + 1] = b[2 * i + 1]! ^ (~b[2 * i1 + 1]! & b[2 * i2 + 1]!);
      }
    }
    // ι
    s[0] = s[0]! ^ RC_LO[round]!;
    s[1] = s[1]! ^ RC_HI[round]!;
  }
}

/** A Keccak sponge with a 256-bit output and rate 136 bytes; `pad` is the domain byte: 0x01 for
 * Keccak-256 (Ethereum, Monero), 0x06 for SHA3-256 (FIPS 202), which the tests compare with Node. */
export function keccak256(data: Uint8Array, pad = 0x01): Uint8Array {
  const RATE = 136;
  const s = new Uint32Array(50);
  const blocks = Math.floor(data.length / RATE) + 1;
  const block = new Uint8Array(RATE);
  for (let k = 0; k < blocks; k++) {
    const part = data.subarray(k * RATE, (k + 1) * RATE);
    block.fill(0);
    block.set(part);
    if (k === blocks - 1) {
      block[part.length] = block[part.length]! ^ pad;
      block[RATE - 1] = block[RATE - 1]! ^ 0x80;
    }
    for (let j = 0; j < RATE; j += 4) s[j >> 2] = s[j >> 2]! ^ (block[j]! | (block[j + 1]! << 8) | (block[j + 2]! << 16) | (block[j + 3]! << 24));
    permute(s);
  }
  const out = new Uint8Array(32);
  for (let j = 0; j < 32; j++) out[j] = (s[j >> 2]! >>> (8 * (j & 3))) & 0xff;
  return out;
}
