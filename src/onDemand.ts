import { createRequire } from "node:module";

/**
 * Loads a dependency that only an optional feature uses (a log format, a config file format), at
 * the moment that feature is used, for code that cannot wait for `import()`. A gateway that
 * never uses the feature never holds the package's code: every megabyte of baseline heap makes
 * each young-generation collection of a busy gateway slower (docs/performance.md).
 */
export const loadOnDemand = createRequire(import.meta.url);
