export { HttpModelRegistry, sha256Hex, type ModelRegistry, type PublishedModel, type Fetch } from './model-registry.ts';
