/**
 * Differential privacy maths: RDP and PLD accountants for the
 * Poisson-subsampled Gaussian mechanism, CSPRNG Gaussian noise, clipping and
 * DP-FedAvg calibration. Pure: no I/O.
 */
export * from './rdp.ts';
export * from './pld.ts';
export * from './gaussian.ts';
export * from './clip.ts';
export { erfc, erfcx, logErfc, normalCdf, normalSf } from './special-functions.ts';
