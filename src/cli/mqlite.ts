#!/usr/bin/env node
import { Command, InvalidArgumentError, Option } from 'commander'
import { formatConfigReference } from '../config/reference.js'
import { mqliteVersion } from '../version.js'
import { runPasswd, type PasswdFlags } from './passwd.js'
import { runStart, type StartFlags } from './start.js'


function portNumber(value: string): number {
  const n = Number(value)
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError('must be a port number 0-65535')
  return n
}

function positiveInteger(value: string): number {
  const n = Number(value)
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('must be a positive integer')
  return n
}

const collect = (value: string, previous: string[] = []): string[] => [...previous, value]

// `mqlite [options]` runs the broker, so `mqlite --help` documents every option; maintenance
// tasks are subcommands.
const program = new Command('mqlite')
  .description('A durable MQTT 3.1/3.1.1/5.0 broker for IoT fleets. Without a command: run the broker.')
  .version(mqliteVersion())
  .option('-c, --config <file>', 'YAML or JSON config file (env MQLITE_CONFIG)')
  .option('--host <address>', 'bind address of the first listener')
  .option('-p, --port <port>', 'port of the first listener (0 picks a free one)', portNumber)
  .addOption(new Option('--store <type>', 'store type').choices(['sqlite', 'memory']))
  .option('--data-dir <dir>', 'directory for the database')
  .option('--db <file>', 'SQLite database file (default <data-dir>/mqlite.db)')
  .addOption(new Option('--synchronous <mode>', 'SQLite durability mode').choices(['normal', 'full']))
  .option('--redis <url>', 'cluster mode: keep all state in this Redis and route messages through it')
  .option('--node-id <id>', 'this node\'s unique id (brokerId), the node label of its metrics')
  .addOption(
    new Option('--log-level <level>', 'log level').choices(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']),
  )
  .option('--metrics-host <address>', 'bind address of the metrics/health HTTP endpoint')
  .option('--metrics-port <port>', 'port of the metrics/health HTTP endpoint (0 picks a free one)', portNumber)
  .option('--no-metrics', 'do not serve /metrics, /healthz and /readyz')
  .option('--set <key=value>', 'set any configuration key, e.g. --set mqtt.maxKeepAlive=60 (repeatable)', collect)
  .option('--print-config', 'print the effective configuration and exit')
  .addHelpText(
    'after',
    `
Configuration sources, lowest precedence first: the config file, environment variables
(MQLITE_<KEY>, levels separated by "__"), then command-line flags.

Configuration keys:
${formatConfigReference()}
`,
  )
  .action((flags: StartFlags) => runStart(flags))

program
  .command('passwd')
  .description('add or change a user in a password file (created if missing), or delete one with -D')
  .argument('<file>', 'password file (auth.passwordFile)')
  .argument('<user>', 'user name')
  .option('-b, --batch <password>', 'take the password from the command line instead of prompting')
  .option('-D, --delete', 'remove the user')
  .option('--scram', 'store SCRAM-SHA-256 keys (MQTT 5 enhanced authentication; plain passwords work too)')
  .option('--iterations <n>', 'PBKDF2 iterations of a --scram entry (default 4096, minimum 4096)', positiveInteger)
  .action(async (file: string, user: string, flags: PasswdFlags) => {
    process.exitCode = await runPasswd(file, user, flags)
  })

await program.parseAsync(process.argv)
