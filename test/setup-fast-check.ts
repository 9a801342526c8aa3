/**
 * Property tests run with a fixed fast-check seed so CI is reproducible;
 * set FC_SEED to explore other inputs locally (a failure prints its seed).
 */
import fc from 'fast-check';

const seed = process.env.FC_SEED === undefined ? 20261127 : Number(process.env.FC_SEED);
fc.configureGlobal({ seed });
