import { InvalidArgumentError } from 'commander'

/** commander option parser for counts: a whole number of at least 1. */
export function positiveInteger(value: string): number {
  const n = Number(value)
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('must be a positive integer')
  return n
}
