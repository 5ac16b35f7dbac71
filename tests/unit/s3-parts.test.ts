import { describe, expect, it } from 'vitest';
import { capacityOf, DEFAULT_PART_SIZE, partSizeForPart } from '../../src/storage/cloud.js';
import { s3PartSize, S3_MAX_PART_SIZE, S3_MAX_PARTS } from '../../src/storage/s3/parts.js';

const MiB = 1024 ** 2;
const TiB = 1024 ** 4;

describe('S3 part sizes for a stream of unknown length', () => {
  it('starts at the base size, so a small backup uses small parts', () => {
    expect(partSizeForPart(1, 8 * MiB, S3_MAX_PARTS)).toBe(8 * MiB);
    expect(partSizeForPart(1000, 8 * MiB, S3_MAX_PARTS)).toBe(8 * MiB);
    expect(partSizeForPart(1001, 8 * MiB, S3_MAX_PARTS)).toBe(16 * MiB);
  });

  it('never shrinks from one part to the next', () => {
    for (let n = 2; n <= S3_MAX_PARTS; n++) {
      expect(partSizeForPart(n, DEFAULT_PART_SIZE, S3_MAX_PARTS)).toBeGreaterThanOrEqual(
        partSizeForPart(n - 1, DEFAULT_PART_SIZE, S3_MAX_PARTS),
      );
    }
  });

  it('reaches S3’s 5 TiB object limit within 10,000 parts with the 8 MiB default, each part ≤ 5 GiB', () => {
    expect(DEFAULT_PART_SIZE).toBe(8 * MiB);
    expect(capacityOf(8 * MiB, S3_MAX_PARTS)).toBeGreaterThanOrEqual(5 * TiB);
    expect(partSizeForPart(S3_MAX_PARTS, 8 * MiB, S3_MAX_PARTS)).toBeLessThanOrEqual(S3_MAX_PART_SIZE);
  });

  it('from the smallest allowed base (5 MiB) falls just short of 5 TiB (base × 1000 × 1023)', () => {
    // A known edge of partSizeForPart: 4.995 TiB. Only --cloud-part-size 5 on a > 4.99 TiB stream hits it.
    expect(capacityOf(5 * MiB, S3_MAX_PARTS)).toBe(5 * MiB * 1000 * 1023);
    expect(capacityOf(6 * MiB, S3_MAX_PARTS)).toBeGreaterThanOrEqual(5 * TiB);
  });

  it('caps every part at 5 GiB for large bases and still fits 5 TiB in 10,000 parts', () => {
    for (const base of [8 * MiB, 64 * MiB, 512 * MiB, 5 * 1024 * MiB]) {
      let total = 0;
      for (let n = 1; n <= S3_MAX_PARTS; n++) {
        const size = s3PartSize(n, base);
        expect(size).toBeLessThanOrEqual(S3_MAX_PART_SIZE);
        total += size;
      }
      expect(total).toBeGreaterThanOrEqual(5 * TiB);
    }
    expect(s3PartSize(1)).toBe(DEFAULT_PART_SIZE);
  });
});
