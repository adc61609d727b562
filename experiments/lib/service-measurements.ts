// The names bench-service gives its measurements: keys of `measurements` in its JSON, which
// summarize reads back, so both take them from here.
export const GET_512B_1CLIENT = 'get-512B-1client';
export const GET_4MIB_1CLIENT = 'get-4MiB-1client';
export const SET_4KIB_1CLIENT = 'set-4KiB-1client';
export const set4KiBClients = (clients: number): string => `set-4KiB-${clients}clients`;
export const get4KiBClients = (clients: number): string => `get-4KiB-${clients}clients`;
