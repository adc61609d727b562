// lbserver's exit status: shared by the CLI and the parts of it in lib/ that end the process.

/** Exit status, so a supervisor can tell a problem worth a restart from one that is not. */
export const EXIT = {
  OK: 0,
  /** Failed while running: closing the store, compaction (or --compact stopped by a signal). */
  FAILED: 1,
  /** Bad command line or option value. */
  USAGE: 2,
  /** Another lbserver holds the data directory (LOCK). */
  LOCKED: 3,
  /** The data directory or file cannot be created or opened: corrupt, unreadable, another format. */
  DATA: 4,
  /** Cannot listen on the address (in use, not local, no permission). */
  LISTEN: 5,
} as const;
