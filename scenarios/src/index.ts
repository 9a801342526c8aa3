export { HttpModelRegistry, type ModelRegistry, type PublishedModel, type Fetch } from './model-registry.ts';
