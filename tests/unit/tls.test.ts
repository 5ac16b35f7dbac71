import { describe, expect, it } from 'vitest';
import { clientTlsArgs } from '../../src/engines/mysql.js';
import {
  connectWithTls,
  nodeTls,
  parseSslMode,
  tlsAttempts,
  type TlsAttempt,
} from '../../src/engines/tls.js';
import { UsageError } from '../../src/errors.js';

const CA = { ca: '-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n' };

describe('sslmode, as libpq reads it', () => {
  it('accepts the six modes in any case and rejects anything else with the list', () => {
    expect(parseSslMode('Verify-Full', '--ssl-mode')).toBe('verify-full');
    expect(parseSslMode(undefined, 'PGSSLMODE')).toBeUndefined();
    expect(() => parseSslMode('requre', 'PGSSLMODE')).toThrow(UsageError);
    expect(() => parseSslMode('requre', 'PGSSLMODE')).toThrow('Invalid PGSSLMODE "requre"');
  });

  it('orders the attempts as libpq does', () => {
    const v = (a: TlsAttempt): string => (a ? a.verify : 'plain');
    expect(tlsAttempts('disable', {}, false).map(v)).toEqual(['plain']);
    expect(tlsAttempts('allow', {}, false).map(v)).toEqual(['plain', 'none']);
    expect(tlsAttempts('prefer', {}, false).map(v)).toEqual(['none', 'plain']);
    expect(tlsAttempts('require', {}, false).map(v)).toEqual(['none']);
    // With a root certificate, libpq's require checks the chain like verify-ca.
    expect(tlsAttempts('require', CA, false).map(v)).toEqual(['chain']);
    expect(tlsAttempts('verify-ca', {}, false).map(v)).toEqual(['chain']);
    expect(tlsAttempts('verify-full', CA, false).map(v)).toEqual(['full']);
  });

  it('never encrypts a Unix socket', () => {
    for (const mode of ['prefer', 'require', 'verify-full'] as const)
      expect(tlsAttempts(mode, CA, true)).toEqual([false]);
  });

  it('checks the host name only for verify-full', () => {
    const [chain] = tlsAttempts('verify-ca', CA, false);
    const [full] = tlsAttempts('verify-full', CA, false);
    const [loose] = tlsAttempts('require', {}, false);
    const chainOpts = nodeTls(chain ?? false);
    const fullOpts = nodeTls(full ?? false);
    expect(chainOpts && chainOpts.rejectUnauthorized).toBe(true);
    expect(chainOpts && typeof chainOpts.checkServerIdentity).toBe('function');
    expect(fullOpts && fullOpts.checkServerIdentity).toBeUndefined();
    expect(fullOpts && fullOpts.ca).toBe(CA.ca);
    expect(nodeTls(loose ?? false)).toMatchObject({ rejectUnauthorized: false });
    expect(nodeTls(false)).toBe(false);
  });
});

describe('connectWithTls', () => {
  it('falls back to the next attempt after a refusal, and reports the last error', async () => {
    const tried: string[] = [];
    const result = await connectWithTls([{ verify: 'none', files: {} }, false], async (a) => {
      tried.push(a ? 'tls' : 'plain');
      if (a) throw new Error('The server does not support SSL connections');
      return 'connected';
    });
    expect(result).toBe('connected');
    expect(tried).toEqual(['tls', 'plain']);
    await expect(
      connectWithTls([false, { verify: 'none', files: {} }], async (a) => {
        throw new Error(a ? 'password authentication failed' : 'no encryption');
      }),
    ).rejects.toThrow('password authentication failed');
  });

  it('does not retry an unreachable server', async () => {
    let calls = 0;
    const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' });
    await expect(
      connectWithTls([{ verify: 'none', files: {} }, false], async () => {
        calls++;
        throw refused;
      }),
    ).rejects.toBe(refused);
    expect(calls).toBe(1);
  });
});

describe('TLS options of the MySQL/MariaDB client programs', () => {
  it('MariaDB clients: --ssl / --skip-ssl / --ssl-verify-server-cert', () => {
    expect(clientTlsArgs(undefined, undefined, true)).toEqual([]);
    expect(clientTlsArgs('disable', '/ca.pem', true)).toEqual(['--skip-ssl']);
    expect(clientTlsArgs('prefer', undefined, true)).toEqual([]);
    // From MariaDB 11.4 the clients verify by default: require must say it does not.
    expect(clientTlsArgs('require', undefined, true)).toEqual(['--ssl', '--skip-ssl-verify-server-cert']);
    expect(clientTlsArgs('verify-full', '/ca.pem', true)).toEqual([
      '--ssl',
      '--ssl-verify-server-cert',
      '--ssl-ca=/ca.pem',
    ]);
  });

  it('Oracle MySQL clients: --ssl-mode=…', () => {
    expect(clientTlsArgs('disable', undefined, false)).toEqual(['--ssl-mode=DISABLED']);
    expect(clientTlsArgs('require', undefined, false)).toEqual(['--ssl-mode=REQUIRED']);
    expect(clientTlsArgs('verify-ca', '/ca.pem', false)).toEqual([
      '--ssl-mode=VERIFY_CA',
      '--ssl-ca=/ca.pem',
    ]);
    expect(clientTlsArgs('verify-full', undefined, false)).toEqual(['--ssl-mode=VERIFY_IDENTITY']);
  });
});
