// Lints this harness with the node client's configuration (run from node-client: npm run lint).
export { default } from '../../../node-client/eslint.config.mjs';
