/**
 * The secrets a run has read: passwords (flags, the environment, password and passphrase files),
 * key material, URLs with credentials. Every message, log line and recorded error is masked with
 * them. A run has one set, kept here and nowhere else: `secrets` is that set, and `remember`,
 * `list` and `mask` are all there is to do with it. Other sets (a test's, a TUI session's) are
 * `new SecretRegistry()`.
 */
export class SecretRegistry {
  private readonly values = new Set<string>();

  /** Mask `value` from now on (values shorter than 3 characters are kept but never masked). */
  remember(value: string): void {
    this.values.add(value);
  }

  /** Every secret remembered so far, oldest first. */
  list(): string[] {
    return [...this.values];
  }

  /** `text` with every remembered secret replaced by `****`. */
  mask(text: string): string {
    return maskSecrets(text, this.list());
  }
}

/** Replace every occurrence of each secret in a text, for messages and logs. */
export function maskSecrets(text: string, secrets: Array<string | undefined>): string {
  let out = text;
  for (const secret of secrets) {
    if (secret && secret.length >= 3) out = out.split(secret).join('****');
  }
  return out;
}

/** This run's secrets. */
export const secrets = new SecretRegistry();
