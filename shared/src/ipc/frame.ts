/** The socket's framing constants, shared by the node-ipc server and the node:net client (client.ts). */

/**
 * Largest frame node-ipc's guarded parser accepts (both ways) before closing the connection.
 * The executor reads requests through its own, much smaller, raw-size gate first
 * (MAX_FRAME_IN_BYTES, server.ts); this bound is for what clients read (responses).
 */
export const MAX_FRAME_BYTES = 1024 * 1024;

/** node-ipc's frame delimiter (its default), which the server's raw-size gate scans for. */
export const FRAME_DELIMITER = '\f';
