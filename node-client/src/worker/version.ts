/** This implementation's version, the worker key's `version` field (SPEC.md 9.1); a test holds it equal to package.json's. */
export const VERSION = '0.1.0';
