#!/usr/bin/env node
// The plain-tools S3 anchor's uploader: `… | node bench/lib/s3-put.mjs ENDPOINT BUCKET KEY` streams stdin
// into one object with the AWS SDK's multipart Upload (8 MiB parts, 4 in flight: dbbackup's defaults),
// the minimum a shell script needs to put a dump into an S3-compatible store without a temporary file.
import process from 'node:process';
import { S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';

const [endpoint, bucket, key] = process.argv.slice(2);
if (!key) {
  console.error('usage: node bench/lib/s3-put.mjs ENDPOINT BUCKET KEY  < data');
  process.exit(2);
}
const client = new S3Client({
  endpoint,
  region: 'us-east-1',
  forcePathStyle: true,
  requestChecksumCalculation: 'WHEN_REQUIRED',
  responseChecksumValidation: 'WHEN_REQUIRED',
});
await new Upload({
  client,
  params: { Bucket: bucket, Key: key, Body: process.stdin },
  partSize: 8 * 1024 * 1024,
  queueSize: 4,
}).done();
client.destroy();
