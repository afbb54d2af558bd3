/** pullnix's version, shown by status and `pullnix-ctl version`. Kept equal to package.json by a test. */
export const VERSION = '0.1.0';
