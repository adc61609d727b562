#!/usr/bin/env node
// lbclient: command-line client for lbserver (uses the typed client library in lib/client.ts).
// Its commands only: arguments, stdin and stdout, errors and the connection are lib/cli-*.ts,
// stat's output lib/stat-format.ts.
// Exit codes: 0 ok, 1 key not found, 2 server unreachable/unavailable, 3 the server returned an
// error, 4 usage or local error (bad flag, bad hex, unreadable file), 5 --timeout-ms ran out.
import { Command, CommanderError } from 'commander';
import { parseKey, unknownOptionHint, unknownOptionOf, wholeOption } from '../lib/cli-args';
import { clientOptions, type GlobalOpts, withServer } from '../lib/cli-connection';
import { CliError, EXIT, localFailure } from '../lib/cli-errors';
import { setValue } from '../lib/cli-input';
import { printListing, writeOut } from '../lib/cli-output';
import { packageVersion } from '../lib/config';
import { escapeBytes } from '../lib/escape';
import { humanStat, statToProtoNames } from '../lib/stat-format';

async function run(argv: string[]): Promise<number> {
  let result = EXIT.OK as number;
  const program = new Command()
    .name('lbclient')
    .description('Command-line client for lbkv (lbserver)')
    .option('--server <addr>', 'server address host:port', '127.0.0.1:50051')
    .option('--hex', 'KEY and PREFIX arguments are hex (and getprefix prints keys in hex)')
    .option('--timeout-ms <n>', 'deadline for each call, ms (default: none)')
    .option('--connect-timeout-ms <n>', 'give up when no connection to the server is made within this many ms (the command is then not sent); 0: wait for ever', '10000')
    .version(packageVersion(), '--version', 'print the version and exit')
    .addHelpText('after', `
Exit codes: 0 ok, 1 key not found (get), 2 server unreachable or unavailable,
            3 the server returned an error, 4 usage or local error, 5 timed out
            after the call was sent (--timeout-ms; a set that timed out may have
            been applied; with no connection by then: 2). A set whose connection
            was lost after it was sent (exit 2) may have been applied too.
A VALUE, KEY or PREFIX that starts with '-' goes after '--': lbclient set k -- -5

Examples:
  lbclient set greeting hello
  lbclient set photo --file ./photo.jpg
  echo -n hello | lbclient set greeting -
  lbclient get greeting > value.bin
  lbclient --hex set 00ff 'binary key'
  lbclient getprefix user/ --limit 10
  lbclient getprefix '' --keys-only
  lbclient --server 127.0.0.1:50051 stat --json`)
    .showHelpAfterError('(run lbclient --help for usage)')
    .exitOverride();

  const globals = () => program.opts<GlobalOpts>();
  const commandNames = () => program.commands.map((c) => c.name());
  program.hook('preAction', (_, action) => { if (action.name() !== 'help') clientOptions(globals()); });

  program.command('set')
    .description('set KEY to VALUE (a string), to the contents of --file F, or to stdin when VALUE is "-"; returns once durable')
    .argument('<key>', 'the key (hex with --hex)')
    .argument('[value]', 'the value as a string, or "-" to read it from stdin')
    .option('--file <path>', 'read the value from this file')
    .exitOverride()
    .action(async (keyArg: string, valueArg: string | undefined, o: { file?: string }) => {
      const g = globals();
      const key = parseKey(keyArg, g.hex);
      const value = await setValue(valueArg, o.file, key.length);
      await withServer(g, 'set', (c) => c.set(key, value));
    });

  program.command('get')
    .description('print the raw value of KEY to stdout (exit 1 if absent)')
    .argument('<key>', 'the key (hex with --hex)')
    .exitOverride()
    .action(async (keyArg: string) => {
      const g = globals();
      const key = parseKey(keyArg, g.hex);
      const v = await withServer(g, 'get', (c) => c.get(key));
      if (v === undefined) {
        process.stderr.write(`lbclient: key not found: ${g.hex ? key.toString('hex') : escapeBytes(key)}\n`);
        result = EXIT.NOT_FOUND;
        return;
      }
      await writeOut(v);
    });

  program.command('getprefix')
    .description('list entries whose key starts with PREFIX ("" for all), in ascending bytewise key order, one "KEY<TAB>VALUE" line each (non-printable bytes as \\xNN, a backslash as \\\\, tab, newline, CR as \\t \\n \\r; in a key or value that is not valid UTF-8, every byte but printable ASCII as \\xNN)')
    .argument('<prefix>', 'the prefix (hex with --hex); "" lists every key')
    .option('--limit <n>', 'at most N entries (0: no limit)', '0')
    .option('--keys-only', 'print only the keys')
    .exitOverride()
    .action(async (prefixArg: string, o: { limit: string; keysOnly?: boolean }) => {
      const g = globals();
      const prefix = parseKey(prefixArg, g.hex, 'prefix');
      // Past 2^53 a count is beyond any store: no limit (the server reads such a uint64 so too).
      const limit = Math.min(wholeOption(o.limit, '--limit', 0, Infinity), Number.MAX_SAFE_INTEGER);
      await withServer(g, 'getprefix', (c, answered, timeoutMs) =>
        // --timeout-ms bounds the whole listing, as it bounds each other command.
        printListing(c.getPrefixMessages(prefix, { limit, timeoutMs }), { hex: g.hex, keysOnly: o.keysOnly }, answered));
    });

  program.command('stat')
    .description('print server statistics (human readable, or --json)')
    .option('--json', 'print JSON with the proto field names')
    .exitOverride()
    .action(async (o: { json?: boolean }) => {
      const g = globals();
      const s = await withServer(g, 'stat', (c) => c.stat());
      await writeOut(o.json ? JSON.stringify(statToProtoNames(s), null, 2) + '\n' : humanStat(g.server, s));
    });

  // commander's own help command printed the whole help on stderr and failed for `help help`, and
  // for an unknown topic without a word of why (`lbclient NAME` says "unknown command").
  program.command('help')
    .description('display help for command')
    .argument('[command]', 'the command to describe')
    .exitOverride()
    .action((topic: string | undefined) => {
      if (topic === undefined || topic === 'help') return program.outputHelp();
      const described = program.commands.find((c) => c.name() === topic);
      if (!described) throw new CliError(`help: unknown command '${topic}' (commands: ${commandNames().filter((c) => c !== 'help').join(', ')})`, EXIT.USAGE);
      described.outputHelp();
    });

  try {
    await program.parseAsync(argv);
  } catch (e) {
    if (e instanceof CommanderError) {
      // --help and `help [command]` are success; help shown because no command was given (exit
      // code 1 from commander) is a usage error.
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || (e.code === 'commander.help' && e.exitCode === 0)) return EXIT.OK;
      if (e.code === 'commander.unknownOption') {
        const hint = unknownOptionHint(argv.slice(2), unknownOptionOf(e.message), commandNames());
        if (hint) process.stderr.write(`lbclient: ${hint}\n`);
      }
      return EXIT.USAGE; // commander already printed the message
    }
    const ce = localFailure(e); // withServer() has turned gRPC failures into CliErrors
    process.stderr.write(`lbclient: ${ce.message}\n`);
    return ce.exitCode;
  }
  return result;
}

// The reader went away (e.g. `lbclient getprefix '' | head`): stop quietly, like other filters.
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code === 'EPIPE') process.exit(0);
  process.stderr.write(`lbclient: cannot write to stdout: ${e.message}\n`);
  process.exit(EXIT.USAGE);
});

// A closed stderr (e.g. `lbclient ... 2>&1 | head -c5`) must not change the exit status.
process.stderr.on('error', () => {});

run(process.argv).then(
  (code) => { process.exitCode = code; },
  (e) => { process.stderr.write(`lbclient: ${(e as Error)?.stack ?? e}\n`); process.exitCode = EXIT.USAGE; },
);
