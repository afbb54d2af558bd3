/** pullnix's version, shown by status and `pullnix-ctl version`. Kept equal to the packages' package.json by shared/test/version.test.ts. */
export const VERSION = '0.1.0';
