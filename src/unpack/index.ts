export { applyLayer, unpackImage } from './apply.js';
export type { ApplyLayerOptions, ApplyLayerResult, LayerToApply, UnpackImageOptions, UnpackWarning, WarningKind } from './apply.js';
export { entryComponents, resolveComponents, resolveInRoot } from './resolve.js';
