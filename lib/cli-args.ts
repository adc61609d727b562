// lbclient's arguments: keys and values from the command line (text or --hex), whole-number
// options, and the hint for an option commander does not know.
import { CliError, EXIT } from './cli-errors';
import { ConfigError, parseIntArg } from './config';

export function parseKey(text: string, hex: boolean | undefined, what: 'key' | 'prefix' = 'key'): Buffer {
  let key: Buffer;
  if (hex) {
    const t = text.replace(/^0x/i, '');
    const bad = /[^0-9a-fA-F]/.exec(t);
    if (bad) throw new CliError(`--hex: ${what} "${text}" holds "${bad[0]}", which is not a hex digit`, EXIT.USAGE);
    if (t.length % 2 !== 0) throw new CliError(`--hex: ${what} "${text}" has an odd number of hex digits (two per byte)`, EXIT.USAGE);
    key = Buffer.from(t, 'hex');
  } else {
    key = textArg(text, what, 'give it as hex with --hex');
  }
  if (what === 'key' && key.length === 0) throw new CliError('the key is empty: keys are 1 or more bytes', EXIT.USAGE);
  return key;
}

/** An argument's bytes. Node decodes the command line as UTF-8 and turns each byte it cannot decode
 *  into U+FFFD, so two different byte strings could arrive as the same key: refuse those. */
export function textArg(text: string, what: string, instead: string): Buffer {
  if (text.includes('\uFFFD')) {
    throw new CliError(`the ${what} argument is not valid UTF-8 (or holds U+FFFD), so its bytes cannot be known; ${instead}`, EXIT.USAGE);
  }
  return Buffer.from(text, 'utf8');
}

/** A whole-number option within [min, max], parsed as lbserver parses its own. */
export function wholeOption(text: string, what: string, min: number, max: number): number {
  try {
    return parseIntArg(text, what, min, max);
  } catch (e) {
    if (e instanceof ConfigError) throw new CliError(e.message, EXIT.USAGE);
    throw e;
  }
}

/** What to add to commander's "unknown option '-x'". After a command, a short "option" may be a
 *  KEY, VALUE or PREFIX that starts with '-' (lbclient set k -5): say how to pass one. Before any
 *  command it can only be an option: -V and -v, the version flag of many programs, get the one
 *  lbclient has; others nothing more (commander names them and points to --help). */
export function unknownOptionHint(args: string[], option: string | undefined, commands: readonly string[]): string | undefined {
  if (option === undefined || option.startsWith('--')) return undefined;
  const at = args.indexOf(option);
  const afterCommand = args.slice(0, at < 0 ? args.length : at).some((a) => commands.includes(a));
  if (afterCommand) return "an argument that starts with '-' goes after '--', e.g. lbclient set k -- -5";
  return versionFlagHint('lbclient', option);
}

/** The option commander's 'commander.unknownOption' error names ("unknown option '-x'"). */
export function unknownOptionOf(message: string): string | undefined {
  return /unknown option '([^']*)'/.exec(message)?.[1];
}

/** -V and -v, the version flag of many programs, get a pointer to the one `program` has. */
export function versionFlagHint(program: string, option: string | undefined): string | undefined {
  return option === '-V' || option === '-v' ? `there is no -V or -v; ${program} --version prints the version` : undefined;
}
