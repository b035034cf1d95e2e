/**
 * Holdfast's own token signing key (ES256): local sign-ins get a JWT signed with it, so that every person's token,
 * local or from the OpenID provider, is checked by the same code (authenticate.ts). Created on first start in the
 * data directory, readable by its owner only (0600); every Holdfast HTTP process on the host reads the same file.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { type CryptoKey, type JWK, calculateJwkThumbprint, exportJWK, generateKeyPair, importJWK } from 'jose';
import type { HoldfastConfig } from '../config/schema';

export interface SigningKey {
  privateKey: CryptoKey;
  publicKey: CryptoKey;
  /** The JWK thumbprint, as the tokens' `kid`. */
  kid: string;
}

export const SIGNING_ALG = 'ES256';

/** `identity.local.signingKeyFile`, relative to the data directory (HOLDFAST_DATA_DIR, .holdfast/data). */
export const signingKeyFile = (config: HoldfastConfig, env: NodeJS.ProcessEnv = process.env): string =>
  inDataDir(config.identity.local.signingKeyFile, env);

/**
 * `identity.signatures.keyFile`: the key that seals electronic signatures (infra/identity/e-signature.ts). A key of
 * its own, so that rotating the token key (which signs everyone out) leaves every signature verifiable.
 */
export const signatureKeyFile = (config: HoldfastConfig, env: NodeJS.ProcessEnv = process.env): string =>
  inDataDir(config.identity.signatures.keyFile, env);

function inDataDir(file: string, env: NodeJS.ProcessEnv): string {
  return isAbsolute(file) ? file : join(resolve(env.HOLDFAST_DATA_DIR ?? '.holdfast/data'), file);
}

/** A key held in memory only (tests): tokens it signed die with the process. */
export async function generateSigningKey(): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair(SIGNING_ALG, { extractable: true });
  return { privateKey, publicKey, kid: await calculateJwkThumbprint(await exportJWK(publicKey)) };
}

/** Reads the key file, or creates it (exclusively: of two processes starting together, one writes, both read). */
export async function loadOrCreateSigningKey(file: string): Promise<SigningKey> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    const key = await generateSigningKey();
    // Folders with the default mode: the data directory is also PostgreSQL's, whose OS user must enter it; the file
    // itself is the owner's alone.
    await mkdir(dirname(file), { recursive: true });
    try {
      await writeFile(file, JSON.stringify(await exportJWK(key.privateKey)), { mode: 0o600, flag: 'wx' });
      return key;
    } catch (writeErr) {
      if ((writeErr as NodeJS.ErrnoException).code !== 'EEXIST') throw writeErr;
      text = await readFile(file, 'utf8');
    }
  }
  const jwk = JSON.parse(text) as JWK;
  const { d: _private, ...publicJwk } = jwk;
  return {
    privateKey: (await importJWK(jwk, SIGNING_ALG)) as CryptoKey,
    publicKey: (await importJWK(publicJwk, SIGNING_ALG)) as CryptoKey,
    kid: await calculateJwkThumbprint(publicJwk),
  };
}
