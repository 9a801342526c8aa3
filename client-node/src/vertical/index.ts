/**
 * Vertical federated learning: PSI entity alignment, vertical logistic
 * regression with CKKS-encrypted residuals and masked gradients, and split
 * neural networks, between one label holder and one or more feature holders.
 */
export * from './channel.ts';
export * from './align.ts';
export * from './label-holder.ts';
export * from './feature-holder.ts';
export { Adam, sigmoid } from './models.ts';
export * from './socket-channel.ts';
