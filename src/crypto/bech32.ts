/**
 * Bech32 (BIP 173) as age uses it for `age1…` recipients and `AGE-SECRET-KEY-1…` identities: the
 * original checksum constant (not bech32m) and no 90-character length limit.
 */

const CHARSET = 'qpzry9x8gf2tvdw0s3jn54khce6mua7l';
const GENERATOR = [0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3];

function polymod(values: readonly number[]): number {
  let chk = 1;
  for (const v of values) {
    const top = chk >>> 25;
    chk = ((chk & 0x1ffffff) << 5) ^ v;
    for (let i = 0; i < 5; i++) if ((top >>> i) & 1) chk ^= GENERATOR[i] ?? 0;
  }
  return chk >>> 0;
}

function hrpExpand(hrp: string): number[] {
  const codes = [...hrp].map((c) => c.charCodeAt(0));
  return [...codes.map((c) => c >> 5), 0, ...codes.map((c) => c & 31)];
}

/** Regroups bits; `pad` adds zero bits at the end (encoding), otherwise leftover bits must be zero. */
function convertBits(data: Iterable<number>, from: number, to: number, pad: boolean): number[] | undefined {
  let acc = 0;
  let bits = 0;
  const out: number[] = [];
  const max = (1 << to) - 1;
  for (const value of data) {
    acc = (acc << from) | value;
    bits += from;
    while (bits >= to) {
      bits -= to;
      out.push((acc >> bits) & max);
    }
    acc &= (1 << bits) - 1;
  }
  if (pad) {
    if (bits > 0) out.push((acc << (to - bits)) & max);
  } else if (bits >= from || acc !== 0) {
    return undefined;
  }
  return out;
}

/** Encodes `data` under the human-readable part `hrp`; the case of `hrp` sets the case of the result. */
export function bech32Encode(hrp: string, data: Uint8Array): string {
  const upper = hrp !== hrp.toLowerCase();
  const lowHrp = hrp.toLowerCase();
  const words = convertBits(data, 8, 5, true) ?? [];
  const mod = polymod([...hrpExpand(lowHrp), ...words, 0, 0, 0, 0, 0, 0]) ^ 1;
  const checksum = Array.from({ length: 6 }, (_, i) => (mod >>> (5 * (5 - i))) & 31);
  const text = `${lowHrp}1${[...words, ...checksum].map((w) => CHARSET[w]).join('')}`;
  return upper ? text.toUpperCase() : text;
}

/** Decodes a bech32 string; undefined if it is malformed, mixed-case, or its checksum is wrong. */
export function bech32Decode(text: string): { hrp: string; data: Buffer } | undefined {
  if (text !== text.toLowerCase() && text !== text.toUpperCase()) return undefined;
  const lower = text.toLowerCase();
  const sep = lower.lastIndexOf('1');
  if (sep < 1 || sep + 7 > lower.length) return undefined;
  const hrp = lower.slice(0, sep);
  for (const c of hrp) {
    const code = c.charCodeAt(0);
    if (code < 33 || code > 126) return undefined;
  }
  const words: number[] = [];
  for (const c of lower.slice(sep + 1)) {
    const w = CHARSET.indexOf(c);
    if (w < 0) return undefined;
    words.push(w);
  }
  if (polymod([...hrpExpand(hrp), ...words]) !== 1) return undefined;
  const bytes = convertBits(words.slice(0, -6), 5, 8, false);
  if (!bytes) return undefined;
  return { hrp, data: Buffer.from(bytes) };
}
