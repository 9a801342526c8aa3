/**
 * A trained text model ready to classify: featurize → forward → softmax at
 * the calibration temperature. Loaded from a published model through a
 * {@link ModelRegistry} (the layout names the classes; the temperature is
 * the one with the lowest aggregated validation NLL among the partners'
 * `eval_nll_t<k>` metrics of that version, 1 when absent).
 */
import type { ModelRegistry } from '../model-registry.ts';
import { bestTemperature, featurize, predictProba, shapeOfLayout, viewParams, TEMPERATURES, type TextModelShape, type TextParams } from './fasttext.ts';

/** A ready text classifier. */
export interface TextClassifier {
  classes: string[];
  temperature: number;
  /** Calibrated class probabilities of a text. */
  proba(text: string): Float64Array;
}

/**
 * Build a classifier from a text model's shape and weights.
 * @param shape - buckets, dim, classes
 * @param weights - the flat joint vector
 * @param temperature - calibration temperature (default 1)
 */
export function textClassifier(shape: TextModelShape, weights: Float32Array, temperature = 1): TextClassifier {
  const p: TextParams = viewParams(weights, shape);
  return { classes: shape.classes, temperature, proba: (text) => predictProba(p, featurize(text, shape.buckets), temperature) };
}

/**
 * The temperature a published version's aggregated validation metrics choose.
 * @param metrics - the version's metrics (`eval_nll_t<k>`)
 */
export function temperatureFromMetrics(metrics: Record<string, number>): number {
  const nll = TEMPERATURES.map((_, k) => metrics[`eval_nll_t${k}`] ?? metrics[`nll_t${k}`] ?? Number.POSITIVE_INFINITY);
  return nll.every((x) => !Number.isFinite(x)) ? 1 : bestTemperature(nll);
}

/**
 * Load a published text model through a registry.
 * @param registry - where published models are read
 * @param federationId - the federation
 * @param version - a version or 'latest'
 * @throws FedmartError UNPROCESSABLE if the model is not a text model
 */
export async function loadTextClassifier(registry: ModelRegistry, federationId: string, version: number | 'latest'): Promise<TextClassifier & { version: number }> {
  const m = await registry.load(federationId, version);
  const shape = shapeOfLayout(m.spec as never);
  return { ...textClassifier(shape, m.weights, temperatureFromMetrics(m.metrics)), version: m.version };
}
