/**
 * Coordinator side of CKKS aggregation: sums clients' encrypted updates
 * chunk by chunk. Built from a public {@link CkksParams} only: this module
 * never constructs a SEAL KeyGenerator, SecretKey, Encryptor or Decryptor, so
 * no secret-key type is reachable from what it returns. Pair:
 * {@link ./ckks.ts} (client side) encrypts and decrypts.
 *
 * CKKS addition is exact on the underlying ring (Cheon et al. 2017, §3):
 * the sum of ciphertexts decrypts to the sum of plaintexts plus the sum of
 * the fresh errors, so aggregation costs no extra precision.
 *
 * Untrusted input. Clients' bytes are checked against the SEAL header
 * (magic, version, declared length) before the wasm loader sees them, and
 * every load failure becomes INVALID_UPDATE naming the client. A stream
 * crafted to pass the header but break zstd inside can still make the wasm
 * code call abort(); that surfaces as a caught RuntimeError (also
 * INVALID_UPDATE, `details.wasmAbort`), and in our tests the instance kept
 * working, but a cautious coordinator recreates its aggregator after one.
 * CKKS gives no integrity: a client can always submit a well-formed
 * ciphertext of garbage; robustness against that is the strategy's job.
 *
 * Pure: no I/O.
 */
import { FedmartError } from '../errors.ts';
import { buildSealCkksRuntime, resolveCkksParams, sealHeaderProblem, type CkksParams, type SealCkksRuntime } from './ckks-params.ts';

/** What the coordinator can do with CKKS ciphertexts: add them. Nothing here touches a key. */
export interface CkksAggregator {
  /** The public parameter set this aggregator was built from (a copy). */
  readonly params: CkksParams;
  /** Real values per ciphertext chunk (N/2). */
  readonly slotCount: number;
  /**
   * Sum clients' encrypted vectors element-wise.
   * @param perClient - one array of chunk bytes per client, every client with the same chunk count
   * @returns the encrypted sum, one serialised ciphertext per chunk
   * @throws RangeError on an empty list; FedmartError INVALID_UPDATE for a chunk-count mismatch or a ciphertext that does not load under these parameters
   */
  addCiphertexts(perClient: ReadonlyArray<ReadonlyArray<Uint8Array>>): Uint8Array[];
  /**
   * The public mask part c1 (= a, uniform randomness) of each ciphertext chunk, as RNS coefficients
   * (uint64 little-endian, NTT form, prime by prime). It carries nothing about the plaintext, and SEAL's
   * addition is exact and deterministic on it, so the mask of a sum is the sum of the masks: a partner can
   * check an aggregate is the sum of the listed contributors' ciphertexts from their masks alone
   * ({@link sumMasks}), without seeing their c0 parts (which it could decrypt).
   * @throws FedmartError INVALID_UPDATE for a chunk that does not load
   */
  maskParts(chunks: ReadonlyArray<Uint8Array>): Uint8Array[];
  /**
   * Sum mask parts coefficient-wise modulo each data prime.
   * @param perClient - one mask array (from {@link maskParts}) per contributor, same chunk count
   * @returns the masks of the sum
   * @throws RangeError on an empty list or mismatched sizes
   */
  sumMasks(perClient: ReadonlyArray<ReadonlyArray<Uint8Array>>): Uint8Array[];
  /** Free the wasm memory held by the context. The aggregator is unusable afterwards. */
  dispose(): void;
}

/**
 * Build the coordinator's aggregator from public parameters.
 *
 * @param params - a public parameter set (defaults: {@link DEFAULT_CKKS_PARAMS})
 * @param opts - `scaleBits`: the scale ciphertexts must carry, when not `params.scaleBits` (multiparty CKKS: 112)
 * @returns an aggregator that can add but never decrypt
 * @throws FedmartError CONFIG_ERROR for parameters SEAL rejects
 * @example
 * const agg = await createCkksAggregator(federation.heParams);
 * const sumChunks = agg.addCiphertexts(updates.map((u) => u.chunks));
 */
export async function createCkksAggregator(params: Partial<CkksParams> = {}, opts: { scaleBits?: number } = {}): Promise<CkksAggregator> {
  const resolved = resolveCkksParams(params);
  const runtime = await buildSealCkksRuntime(resolved);
  // Multiparty ciphertexts live at scale 2^112 (he/multiparty.ts), beyond what `scaleBits` (≤ 60) can name:
  // the aggregator only checks and keeps the scale (addition never rescales), so it takes the override.
  return aggregatorFromRuntime(resolved, opts.scaleBits === undefined ? runtime : { ...runtime, scale: 2 ** opts.scaleBits });
}

/** @internal shared by the client context, which adds the key-holding functions on top. */
export function aggregatorFromRuntime(params: CkksParams, rt: SealCkksRuntime): CkksAggregator {
  const evaluator = rt.seal.Evaluator(rt.context);
  let disposed = false;
  const frozenParams = Object.freeze({ ...params, coeffModulusBits: Object.freeze([...params.coeffModulusBits]) as unknown as number[] });

  const loadChecked = (bytes: Uint8Array, client: number, chunk: number, into: ReturnType<typeof rt.seal.CipherText>): void => {
    if (!(bytes instanceof Uint8Array)) throw new TypeError(`addCiphertexts: client ${client} chunk ${chunk} must be a Uint8Array, got ${describe(bytes)}`);
    const problem = sealHeaderProblem(bytes);
    if (problem !== null) {
      throw new FedmartError('INVALID_UPDATE', `client ${client} chunk ${chunk}: expected a serialised CKKS ciphertext, got ${problem}; the client must send encryptVector's output unchanged`, { details: { client, chunk } });
    }
    try {
      into.loadArray(rt.context, bytes);
    } catch (err) {
      const wasmAbort = err instanceof Error && err.name === 'RuntimeError';
      throw new FedmartError('INVALID_UPDATE', `client ${client} chunk ${chunk}: expected a CKKS ciphertext serialised under ${describeParams(params)}, but it did not load (${String(err)}); the client must encrypt with the federation's current parameters`, { cause: err, details: { client, chunk, wasmAbort } });
    }
    // A ciphertext that loaded may still be at another level or scale, which
    // would make add() fail or silently mis-scale the sum.
    if (into.size !== 2 || into.coeffModulusSize !== rt.dataPrimeCount || into.polyModulusDegree !== params.polyModulusDegree || into.scale !== rt.scale) {
      throw new FedmartError('INVALID_UPDATE', `client ${client} chunk ${chunk}: expected a fresh 2-part ciphertext with ${rt.dataPrimeCount} primes at scale 2^${Math.log2(rt.scale)}, got size ${into.size}, ${into.coeffModulusSize} primes, scale 2^${Math.log2(into.scale).toFixed(1)}; encrypt with encryptVector under the federation's parameters`, { details: { client, chunk } });
    }
  };

  return {
    params: frozenParams,
    slotCount: rt.slotCount,
    addCiphertexts(perClient) {
      if (disposed) throw new FedmartError('INTERNAL', 'addCiphertexts: this aggregator was disposed; create a new one with createCkksAggregator');
      if (!Array.isArray(perClient)) throw new TypeError(`addCiphertexts: expected an array of per-client chunk arrays, got ${describe(perClient)}`);
      if (perClient.length === 0) throw new RangeError('addCiphertexts: expected at least one client');
      perClient.forEach((chunks, i) => {
        if (!Array.isArray(chunks)) throw new TypeError(`addCiphertexts: client ${i} must be an array of Uint8Array chunks, got ${describe(chunks)}`);
      });
      const chunkCount = perClient[0]!.length;
      for (let i = 1; i < perClient.length; i++) {
        if (perClient[i]!.length !== chunkCount) {
          throw new FedmartError('INVALID_UPDATE', `client ${i} sent ${perClient[i]!.length} ciphertext chunks, expected ${chunkCount} like client 0; every client must encrypt a vector of the model's length`, { details: { client: i } });
        }
      }
      const out: Uint8Array[] = [];
      const acc = rt.seal.CipherText();
      const tmp = rt.seal.CipherText();
      try {
        for (let c = 0; c < chunkCount; c++) {
          loadChecked(perClient[0]![c]!, 0, c, acc);
          // SEAL throws "result ciphertext is transparent" when a partial sum's c1 is all zero, which
          // happens when one upload is the negation of another already added (a malleability attack the
          // commitments catch later, or an unlucky order). Such a partial sum is the zero ciphertext:
          // carry on from the next client's ciphertext, so the total does not depend on upload order.
          let zero = false;
          for (let k = 1; k < perClient.length; k++) {
            if (zero) {
              loadChecked(perClient[k]![c]!, k, c, acc);
              zero = false;
              continue;
            }
            loadChecked(perClient[k]![c]!, k, c, tmp);
            try {
              evaluator.add(acc, tmp, acc);
            } catch (err) {
              if (!/transparent/.test(String(err instanceof Error ? err.message : err))) throw err;
              zero = true;
            }
          }
          if (zero) throw new FedmartError('INVALID_UPDATE', `chunk ${c}: the clients' ciphertexts sum to the zero (transparent) ciphertext, which only cancelling uploads produce; drop the cancelling clients and rerun the round`, { details: { chunk: c } });
          out.push(acc.saveArray(rt.compression as never));
        }
      } finally {
        acc.delete();
        tmp.delete();
      }
      return out;
    },
    maskParts(chunks) {
      const ct = rt.seal.CipherText();
      const none = rt.seal.ComprModeType.none as never;
      const maskBytes = params.polyModulusDegree * rt.dataPrimeCount * 8;
      try {
        return chunks.map((bytes, c) => {
          loadChecked(bytes, 0, c, ct);
          // Uncompressed layout ends with the two polynomials' RNS coefficients: c0 then c1.
          const raw = ct.saveArray(none);
          return raw.slice(raw.byteLength - maskBytes);
        });
      } finally {
        ct.delete();
      }
    },
    sumMasks(perClient) {
      if (perClient.length === 0) throw new RangeError('sumMasks: expected at least one contributor');
      const N = params.polyModulusDegree;
      const primes = Array.from(rt.context.firstContextData.parms.coeffModulus as BigUint64Array).slice(0, rt.dataPrimeCount);
      const maskBytes = N * primes.length * 8;
      return perClient[0]!.map((_, c) => {
        const acc = new BigUint64Array(N * primes.length);
        for (const masks of perClient) {
          const m = masks[c];
          if (m === undefined || m.byteLength !== maskBytes) throw new RangeError(`sumMasks: chunk ${c} mask must be ${maskBytes} bytes, got ${m?.byteLength ?? 'none'}`);
          const v = new DataView(m.buffer, m.byteOffset, m.byteLength);
          for (let j = 0; j < primes.length; j++) {
            const q = primes[j]!;
            for (let i = j * N; i < (j + 1) * N; i++) {
              const s = acc[i]! + v.getBigUint64(i * 8, true);
              acc[i] = s >= q ? s - q : s;
            }
          }
        }
        const out = new Uint8Array(maskBytes);
        const w = new DataView(out.buffer);
        for (let i = 0; i < acc.length; i++) w.setBigUint64(i * 8, acc[i]!, true);
        return out;
      });
    },
    dispose() {
      if (disposed) return;
      disposed = true;
      evaluator.delete();
      rt.context.delete();
    },
  };
}

function describeParams(p: CkksParams): string {
  return `N=${p.polyModulusDegree}, primes [${p.coeffModulusBits.join(',')}], scale 2^${p.scaleBits}`;
}

/** @internal short description of an unexpected value for error messages. */
export function describe(x: unknown): string {
  if (x === null) return 'null';
  if (Array.isArray(x)) return `an array of length ${x.length}`;
  if (ArrayBuffer.isView(x)) return `${x.constructor.name}(${x.byteLength} bytes)`;
  return typeof x;
}
